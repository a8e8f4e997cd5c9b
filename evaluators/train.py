"""The training loop: section 4.1's recipe over whole-dataset device tensors.

One flat loop in the airbench manner: the train images sit on the device as uint8; each step
gathers a batch by index, augments and normalises it with batched tensor ops, and takes one
SGD step. Data order and augmentation draw from one CPU ``torch.Generator`` seeded by the
trial seed, so a CPU run repeats exactly; with a checkpoint (evaluators.checkpoint) it also
resumes exactly after an interruption.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.augment import CIFAR_PAD, TINY_SCALE, crop_flip, normalize, scale_crop_flip
from evaluators.checkpoint import (
    EpochCheckpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from evaluators.errors import Diverged
from evaluators.fidelity import Fidelity
from evaluators.splits import Splits

_CHECK_EVERY_CUDA = 50  # steps between loss-finiteness checks on GPU (each one syncs)
StepHook = Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor], object]


def lr_factor(step: int, total_steps: int, fidelity: Fidelity) -> float:
    """Multiplier of ``fidelity.lr`` before optimiser step ``step`` (0-based) of ``total_steps``.

    "step": ``lr_decay`` per milestone passed (0.5, 0.75, 0.875 of the budget = epochs 200,
    300, 350 of 400 in the paper). "cosine": half a cosine from 1 to 0. Times the linear
    warm-up over the first ``warmup_steps`` steps: (step + 1) / warmup_steps.
    """
    progress = step / max(total_steps, 1)
    warm = min(1.0, (step + 1) / fidelity.warmup_steps) if fidelity.warmup_steps else 1.0
    if fidelity.lr_schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    passed = sum(progress >= m for m in fidelity.lr_milestones)
    return warm * fidelity.lr_decay ** passed


def zero_init_residuals(model: nn.Module) -> int:
    """Set gamma = 0 in the last BatchNorm of every residual branch of ``model`` (the
    second block of a ``ResidualPair``, the body of an ``InvertedResidual``), so that each
    skip starts as the identity (``Fidelity.zero_init_residual``). Returns how many."""
    from search_space.modules import InvertedResidual, ResidualPair

    count = 0
    for m in model.modules():
        branch = m.second if isinstance(m, ResidualPair) else (
            m.body if isinstance(m, InvertedResidual) else None)
        bns = [] if branch is None else [
            b for b in branch.modules() if isinstance(b, nn.BatchNorm2d)]
        if bns:
            with torch.no_grad():
                bns[-1].weight.zero_()
            count += 1
    return count


def make_optimizer(model: nn.Module, fidelity: Fidelity) -> torch.optim.SGD:
    """SGD with Nesterov momentum and weight decay on every parameter (paper, 4.1)."""
    return torch.optim.SGD(model.parameters(), lr=fidelity.lr, momentum=fidelity.momentum,
                           nesterov=True, weight_decay=fidelity.weight_decay)


def train_epochs(model: nn.Module, splits: Splits, fidelity: Fidelity, *, seed: int,
                 device: torch.device,
                 checkpoint: EpochCheckpoint | None = None,
                 on_step: StepHook | None = None) -> Iterator[dict]:
    """Train ``model`` for ``fidelity.epochs``; yield one curve row per epoch.

    Each row: ``epoch`` (1-based), ``train_loss`` (mean over the epoch's images),
    ``train_acc``, ``val_acc`` (in [0, 1]) and ``seconds`` (wall time of the epoch, validation
    included).

    With ``checkpoint``, the state after every epoch (model, optimiser, LR schedule, random
    generators, curve) is written atomically to ``checkpoint.path`` before the epoch's row is
    yielded; if that path already holds a valid checkpoint of this trial, training resumes
    after its epoch: the rows of the restored epochs are yielded first (as they were), then
    the remaining epochs train exactly as they would have without the interruption.

    ``on_step(model, optimizer, loss)``, if given, is called after each step's backward
    pass and before its update (gradients and the step's lr in place): a probe for
    measurements (benchmarks/deep_nets.py reads per-step loss, gradient norm and lr). It
    must not change the model, or the run is not the fidelity's.

    Raises:
        Diverged: a non-finite loss; the message is ``loss=nan at epoch E step S`` (1-based
            step within the epoch).
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, fidelity)
    n, bs = splits.train_images.shape[0], fidelity.batch_size
    steps = math.ceil(n / bs)
    total = steps * fidelity.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, fidelity))
    sizes = torch.full((steps,), float(bs), device=device)  # images per step
    sizes[-1] = n - bs * (steps - 1)
    curve: list[dict] = []
    if checkpoint is not None:
        curve = _resume(checkpoint, model, optimizer, schedule, generator, device, seed,
                        fidelity)
        yield from (dict(row) for row in curve)
    for epoch in range(len(curve) + 1, fidelity.epochs + 1):
        start = time.perf_counter()
        losses, correct = _epoch(model, splits, fidelity, epoch, optimizer, schedule,
                                 generator, device, on_step)
        val_acc = accuracy(model, splits.val_images, splits.val_labels, splits,
                           batch_size=fidelity.eval_batch_size)
        row = {
            "epoch": epoch,
            "train_loss": (losses * sizes).sum().item() / n,
            "train_acc": correct.item() / n,
            "val_acc": val_acc,
            "seconds": time.perf_counter() - start,
        }
        curve.append(row)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "epoch": epoch, "curve": curve,
                **_trial_state(model, optimizer, schedule, generator, device),
            }, elapsed_s=checkpoint.resumed_s + time.perf_counter() - started)
        yield dict(row)


def _epoch(model: nn.Module, splits: Splits, fidelity: Fidelity, epoch: int,
           optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LambdaLR,
           generator: torch.Generator, device: torch.device,
           on_step: StepHook | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's steps over the training images in a fresh random order: (the mean loss
    of each batch, the number of images predicted right), both still on ``device``."""
    cuda = device.type == "cuda"
    check_every = _CHECK_EVERY_CUDA if cuda else 1  # on CPU a check is free
    n, bs = splits.train_images.shape[0], fidelity.batch_size
    steps = math.ceil(n / bs)
    model.train()
    order = torch.randperm(n, generator=generator).to(device)
    losses = torch.zeros(steps, device=device)  # mean loss of each batch
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for step in range(steps):
        idx = order[step * bs:(step + 1) * bs]
        x = _train_batch(splits, idx, generator, cuda)
        y = splits.train_labels[idx]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        losses[step] = loss.detach()
        if (step + 1) % check_every == 0 or step + 1 == steps:
            _check_finite(losses, step, check_every, epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if on_step is not None:
            on_step(model, optimizer, loss.detach())
        optimizer.step()
        schedule.step()
        correct += (logits.argmax(1) == y).sum()
    return losses, correct


def _resume(checkpoint: EpochCheckpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
            schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
            device: torch.device, seed: int, fidelity: Fidelity) -> list[dict]:
    """Restore a valid checkpoint of this trial into the fresh objects; its curve, or []."""
    # The trial's own arguments are part of what a checkpoint must match, whatever the
    # caller put in its identity: resuming another seed or budget would mix two trials.
    checkpoint.identity = {**checkpoint.identity, "seed": seed,
                           "fidelity_config": fidelity.to_dict(), "device": device.type}
    state = load_checkpoint(checkpoint)
    if state is None or not 1 <= state["epoch"] <= fidelity.epochs:
        checkpoint.resumed_epochs, checkpoint.resumed_s = 0, 0.0
        return []
    fresh = copy.deepcopy(_trial_state(model, optimizer, schedule, generator, device))
    try:
        _restore(state, model, optimizer, schedule, generator, device)
    except (KeyError, RuntimeError, ValueError, TypeError):
        # Same identity but another layout (the code changed between the runs): a partial
        # load must not leak into the fresh start.
        _restore(fresh, model, optimizer, schedule, generator, device)
        checkpoint.resumed_epochs, checkpoint.resumed_s = 0, 0.0
        return []
    return [dict(row) for row in state["curve"]]


def _trial_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                 device: torch.device) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "rng": rng_state(device, generator)}


def _restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
             schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
             device: torch.device) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    set_rng_state(state["rng"], device, generator)


def _train_batch(splits: Splits, idx: torch.Tensor, generator: torch.Generator,
                 cuda: bool) -> torch.Tensor:
    images = splits.train_images[idx]
    if splits.augmentation == "crop_flip":
        pad = max(1, round(CIFAR_PAD * images.shape[-1] / 32))  # 4 px at 32, scaled with size
        images = crop_flip(images, pad, generator)
    elif splits.augmentation == "scale_crop_flip":
        images = scale_crop_flip(images, TINY_SCALE, generator)
    x = normalize(images, splits.mean, splits.std)
    return x.contiguous(memory_format=torch.channels_last) if cuda else x


def _check_finite(losses: torch.Tensor, step: int, window: int, epoch: int) -> None:
    """Raise Diverged naming the first non-finite loss among the last ``window`` steps."""
    first = max(0, step + 1 - window)
    recent = losses[first:step + 1]
    bad = (~torch.isfinite(recent)).nonzero()
    if len(bad):
        at = first + int(bad[0, 0])
        value = losses[at].item()
        raise Diverged(f"loss={value} at epoch {epoch} step {at + 1}")


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, splits: Splits, *,
             batch_size: int) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode, no augmentation)."""
    cuda = images.device.type == "cuda"
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start:start + batch_size], splits.mean, splits.std)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        correct += (logits.argmax(1) == labels[start:start + batch_size]).sum()
    model.train(was_training)
    return correct.item() / images.shape[0]
