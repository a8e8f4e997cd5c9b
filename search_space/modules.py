"""Torch modules built from a NetPlan: the reference implementation.

The reference is the plain one: ``nn.Conv2d(groups=G)`` for every group convolution and the
channel shuffle as view/transpose/reshape. Faster implementations must match it (tests).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .plan import Block, NetPlan


class ChannelShuffle(nn.Module):
    """P_l of eq. 4: (N, G*K, H, W) -> view (N, G, K, H, W) -> swap G, K -> (N, K*G, H, W)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ReferenceBlock(nn.Sequential):
    """conv -> BN -> [shuffle] -> [ReLU] for each group convolution of the block."""

    def __init__(self, block: Block) -> None:
        layers: list[nn.Module] = []
        for conv, g, relu in zip(block.convs, block.shuffle, block.relu, strict=True):
            layers.append(
                nn.Conv2d(conv.cin, conv.cout, conv.k, conv.stride, conv.k // 2,
                          groups=conv.groups, bias=False)
            )
            layers.append(nn.BatchNorm2d(conv.cout))
            if g > 1:
                layers.append(ChannelShuffle(g))
            if relu:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def shortcut(x: torch.Tensor, cout: int, stride: int) -> torch.Tensor:
    """Parameter-free skip (ResNet option A): subsample and zero-pad channels."""
    if stride > 1:
        x = x[:, :, ::stride, ::stride]
    if cout > x.shape[1]:
        x = F.pad(x, (0, 0, 0, 0, 0, cout - x.shape[1]))
    return x


class ResidualPair(nn.Module):
    """Two blocks with an identity skip around them (Table 1: a skip every two blocks)."""

    def __init__(self, first: nn.Module, second: nn.Module, cout: int, stride: int) -> None:
        super().__init__()
        self.first, self.second = first, second
        self.cout, self.stride = cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.second(self.first(x)) + shortcut(x, self.cout, self.stride))


class InvertedResidual(nn.Module):
    """MobileNetV2 / IGCV3: identity skip around a stride-1 block of equal widths."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SparseClassifier(nn.Module):
    """Table 8's IGCV2* classifier: group 1x1 convs on the pooled features, the last with bias."""

    def __init__(self, head: tuple[Block, ...]) -> None:
        super().__init__()
        *body, last = head
        self.body = nn.Sequential(*(ReferenceBlock(b) for b in body))
        c = last.convs[0]
        self.out = nn.Conv2d(c.cin, c.cout, 1, groups=c.groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x)).flatten(1)


class Net(nn.Module):
    """stem -> blocks -> global average pool -> classifier."""

    def __init__(self, plan: NetPlan, block_cls: type[nn.Module] = ReferenceBlock) -> None:
        super().__init__()
        s = plan.stem
        # the blocks' class may compute the stem its own way (FastBlock: search_space.fast)
        stem_cls = getattr(block_cls, "stem_cls", nn.Sequential)
        self.stem = stem_cls(
            nn.Conv2d(s.cin, s.cout, s.k, s.stride, s.k // 2, bias=False),
            nn.BatchNorm2d(s.cout),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*stage_blocks(plan, block_cls))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier: nn.Module
        if plan.head:
            self.classifier = SparseClassifier(plan.head)
        else:
            self.classifier = nn.Sequential(nn.Flatten(1), nn.Linear(plan.fc_in, plan.num_classes))
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))))


def stage_blocks(plan: NetPlan, block_cls: type[nn.Module]) -> list[nn.Module]:
    """The net's blocks, ``block_cls`` of each planned block, with the plan's skips (inverted
    residuals, or residual pairs); the folded multi-model net builds its body here too."""
    blocks = list(plan.blocks)
    if plan.skip == "inverted":
        return [
            InvertedResidual(block_cls(b))
            if b.cin == b.cout and all(c.stride == 1 for c in b.convs)
            else block_cls(b)
            for b in blocks
        ]
    if plan.skip != "pairs":
        return [block_cls(b) for b in blocks]
    out: list[nn.Module] = []
    per_stage = len(blocks) // len(plan.stage_blocks)
    for start in range(0, len(blocks), per_stage):
        stage = blocks[start : start + per_stage]
        for i in range(0, len(stage) - 1, 2):
            a, b = stage[i], stage[i + 1]
            stride = max(c.stride for c in a.convs)
            # The second block's end ReLU moves after the addition.
            b_open = replace(b, relu=b.relu[:-1] + (False,))
            out.append(ResidualPair(block_cls(a), block_cls(b_open), b.cout, stride))
        if len(stage) % 2:  # an odd B leaves the stage's last block without a skip
            out.append(block_cls(stage[-1]))
    return out


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
