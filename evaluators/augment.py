"""Batched augmentation and normalisation on the device: no per-image Python.

Random numbers come from a CPU ``torch.Generator`` (a few per image) and are moved to the
images' device, so a seed gives the same augmentation on CPU and GPU.

Example:
    >>> x = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    >>> crop_flip(x, pad=4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CIFAR_PAD = 4  # pixels of zero padding before the random crop at 32x32 (paper, section 4.1)
TINY_SCALE = 80 / 64  # Tiny ImageNet: scale 64 up to [64, 80], crop 64 (paper, section 4.1)


def crop_flip(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back at a random offset, and mirror half the images.

    One gather does crop and flip for the whole batch (index arithmetic per image row/column).

    Args:
        images: B x C x H x W (any dtype; uint8 in training).
        pad: pixels of padding per side; 0 keeps only the flip.
        generator: CPU generator for the offsets and flips.

    Returns:
        A new B x C x H x W tensor, same dtype and device.
    """
    b, _, h, w = images.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(images.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    rows = dy[:, None] + torch.arange(h, device=images.device)  # B x H
    cols = dx[:, None] + torch.arange(w, device=images.device)  # B x W
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # B x H x W x C
    return out.permute(0, 3, 1, 2).contiguous()


def scale_crop_flip(images: torch.Tensor, max_scale: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Scale each image up by a random factor in [1, max_scale], crop its original size at a
    random position, and mirror half the images (Tiny ImageNet: 64 -> [64, 80] -> crop 64).

    One ``affine_grid``/``grid_sample`` (bilinear) call for the whole batch.

    Args:
        images: B x C x H x W uint8.
        max_scale: largest scale factor (80/64 in the paper).
        generator: CPU generator for scales, positions and flips.

    Returns:
        B x C x H x W uint8 on the same device.
    """
    b = images.shape[0]
    inv = 1 / (1 + (max_scale - 1) * torch.rand(b, generator=generator))  # output/input size
    room = 1 - inv  # how far (normalised coordinates) the crop centre may move
    tx = room * (2 * torch.rand(b, generator=generator) - 1)
    ty = room * (2 * torch.rand(b, generator=generator) - 1)
    sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sign * inv, tx
    theta[:, 1, 1], theta[:, 1, 2] = inv, ty
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def resize(images: torch.Tensor, size: int, *, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images to ``size`` x ``size``: average pooling for an integer factor (as the
    CPU probes did, 32 -> 16 by 2x2), else antialiased bilinear. Chunked to bound memory."""
    side = images.shape[-1]
    if side == size:
        return images
    out = []
    for part in images.split(chunk):
        x = part.float()
        if side % size == 0:
            x = F.avg_pool2d(x, side // size)
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def channel_stats(images: torch.Tensor, *, chunk: int = 4096) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and std of uint8 images, in [0, 1] units (float32, shape C)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64, device=images.device)
    squares = torch.zeros_like(total)
    for part in images.split(chunk):
        x = part.to(torch.float64).div_(255).transpose(0, 1).flatten(1)
        total += x.sum(1)
        squares += (x * x).sum(1)
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 B x C x H x W -> float32 (x/255 - mean) / std, channel-wise (paper, 4.1)."""
    scale = (1 / (255 * std)).view(1, -1, 1, 1)
    shift = (mean / std).view(1, -1, 1, 1)
    return images.float().mul_(scale).sub_(shift)
