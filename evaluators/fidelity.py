"""Named training budgets ("fidelities"): every hyperparameter of a trial in one frozen config.

A fidelity says how much data, at what resolution, for how many epochs, with which optimiser
settings a design is trained. The config is recorded on every result, so a number can always
be traced to the budget that produced it. Section 4.1 of the IGCV2 paper fixes the recipe
(SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 decayed x0.1 at 200/300/350 of 400
epochs, batch 64); the cheaper fidelities keep that recipe and shrink the budget.

Example:
    >>> f = with_changes(get_fidelity("smoke"), lr=100.0)
    >>> f.name, f.lr
    ('smoke+lr=100.0', 100.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

LR_SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class Fidelity:
    """One training budget. Change fields with :func:`with_changes`, which also renames it.

    Records are keyed by the fidelity's ``name``, so a modified fidelity needs a new name
    when its records share a run directory with the original's.
    """

    name: str
    # --- data ---
    train_size: int | None = None  # images drawn from the official train split, validation
    #                                included; None = all (50,000 for CIFAR). Fewer = cheaper.
    val_fraction: float = 0.1  # share of the drawn train images held out for validation:
    #                            5,000 of 50,000 for CIFAR, as is usual; search reads val only.
    test_size: int | None = None  # official test images used for the reported test accuracy;
    #                               None = all. A random (fixed) subset: CIFAR test is by class.
    resolution: int | None = None  # pixels per side the images are resized to before training
    #                                (2x2 average pooling for 32 -> 16); None = the dataset's.
    #                                Compute of plain nets scales with its square. The net is
    #                                still built (and its FLOPs counted) for the dataset's size.
    augment: bool = True  # pad-and-crop + flip (CIFAR), scale-and-crop + flip (Tiny ImageNet)
    split_seed: int = 0  # fixes the train subset, the validation split and the test subset, so
    #                      every design and every trial seed sees the same images.
    # --- optimisation (section 4.1) ---
    epochs: int = 400  # passes over the training images; the paper trains 400 on CIFAR.
    batch_size: int = 64  # images per SGD step, as in the paper.
    lr: float = 0.1  # initial learning rate, as in the paper.
    lr_schedule: str = "step"  # "step": x lr_decay at each milestone; "cosine": to zero.
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.875)  # fractions of the step budget at
    #                                which "step" decays: 200, 300, 350 of 400 epochs (paper).
    lr_decay: float = 0.1  # factor per milestone, as in the paper.
    warmup_steps: int = 0  # SGD steps over which lr rises linearly to `lr` (lr x s/W at
    #                        step s = 1..W; Goyal et al. 2017's gradual warm-up). 0 = none,
    #                        the paper's "starting from learning rate 0.1". Not in the paper,
    #                        whose 400 epochs make any start negligible; the CPU rungs' two
    #                        epochs do not: at lr 0.1 from the first step res20/res26 blow up
    #                        (loss 2.3 -> 24 in 3 steps, docs/fidelities.md "Deep nets").
    momentum: float = 0.9  # Nesterov momentum, as in the paper.
    zero_init_residual: bool = False  # start the last BatchNorm of every residual branch at
    #                            gamma = 0 (Goyal et al. 2017), so each skip starts as the
    #                            identity. Not in the paper. Without it the residual sums grow
    #                            the features with depth: res20's first gradient norm is 7.9
    #                            (0.30 with it) and at lr 0.1 its loss climbs 2.6 -> 24 in
    #                            four steps; a 2-epoch rung does not recover (docs/
    #                            fidelities.md, "Deep nets at the CPU rungs"). Plain nets have
    #                            no residual branch: for them it changes nothing.
    weight_decay: float = 1e-4  # L2 on every parameter (Caffe's default), as in the paper.
    # --- measurement ---
    eval_batch_size: int = 500  # images per forward pass for validation/test; memory only.
    threads: int | None = None  # CPU threads for torch when evaluate() gets none; None = leave
    #                             torch's default. Set to the CPUs a trial is given.
    latency_warmup: int = 3  # untimed forward passes before timing (allocator, caches).
    latency_reps: int = 10  # timed forward passes per batch size; the median is recorded.
    #                         0 skips the measurement (latency fields are then null).
    latency_resolution: int | None = None  # input side for latency; None = the size the net is
    #                                        built for (describe()["input_size"]), as its FLOPs.
    deterministic: bool = True  # CUDA: torch.use_deterministic_algorithms and cudnn.benchmark
    #                             off, so a seed repeats its curve; False lets cuDNN autotune
    #                             and use non-deterministic kernels (2.6x faster for IGCV2 L=7
    #                             on an H100, docs/fidelities.md). CPU runs are deterministic
    #                             either way.

    def __post_init__(self) -> None:
        def bad(field: str, value: object, accepted: str) -> ValueError:
            return ValueError(f"Fidelity {self.name!r}: {field}={value!r}; expected {accepted}")

        for field in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise bad(field, value, "an integer >= 1")
        for field in ("train_size", "test_size", "resolution", "threads", "latency_resolution"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise bad(field, value, "None or an integer >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise bad("val_fraction", self.val_fraction, "a number in (0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", self.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.zero_init_residual, bool):
            raise bad("zero_init_residual", self.zero_init_residual, "True or False")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise bad("warmup_steps", self.warmup_steps, "an integer >= 0")
        if not all(0.0 <= m <= 1.0 for m in self.lr_milestones):
            raise bad("lr_milestones", self.lr_milestones, "fractions in [0, 1]")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", self.lr, "a finite number > 0")
        if self.latency_reps < 0 or self.latency_warmup < 0:
            raise bad("latency_reps/latency_warmup", (self.latency_reps, self.latency_warmup),
                      "integers >= 0")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (tuples become lists)."""
        config = dataclasses.asdict(self)
        config["lr_milestones"] = list(self.lr_milestones)
        # Fields added after records existed are left out at their default, which is what
        # those records ran with: run directories (run.json) and exports made before keep
        # matching the config of the same fidelity.
        for name, default in _LATER_FIELDS.items():
            if config[name] == default:
                del config[name]
        return config


# field -> the behaviour before the field existed
_LATER_FIELDS = {"deterministic": True, "warmup_steps": 0, "zero_init_residual": False}


#: The ladder, cheapest first: analysis orders fidelities (tables, rank-agreement pairs) so.
FIDELITIES: dict[str, Fidelity] = {
    # Synthetic data (any dataset works; tests use "synthetic"), 8x8 pixels: seconds on a CPU.
    # Enough epochs that a learnable set is learnt far above chance, so a test can tell a
    # training loop that works from one that does not. One thread: on a busy machine a
    # second thread's synchronisation stalls cost seconds (measured 10x slower steps).
    "smoke": Fidelity(
        name="smoke", train_size=1_000, test_size=500, resolution=8, epochs=4, threads=1,
        latency_warmup=1, latency_reps=2, latency_resolution=8,
    ),
    # Real CIFAR on this 2-core CPU: one trial of plain8 IGCV2 C=144 (K=(1,12,12)) in about
    # 3 min: 8,000 images (7,200 train + 800 val) x 2 epochs at 16x16 (2x2 average pooling:
    # 4x fewer FLOPs); measured 158-177 CPU-s, 41% test accuracy. 10,000 images took 196.
    # One thread: on a busy machine a second thread made steps 5-10x slower, and two
    # 1-thread trials share the 2 cores instead. See docs/fidelities.md for the measurements.
    "cpu": Fidelity(
        name="cpu", train_size=8_000, test_size=2_000, resolution=16, epochs=2, threads=1,
        latency_warmup=1, latency_reps=3,
    ),
    # Version 2 of the CPU rungs (issue 23). Records are keyed by fidelity name, so the
    # committed `cpu` and `cpu2` records keep their names and configs above, and these new
    # names never pool with them. `cpu-v2` trains what `cpu` trains (7,200 images x 2
    # epochs at 16x16, the same training cost) but selects on 7,200 validation images the
    # rung does not train on (val_fraction 0.5 of 14,400 drawn; SE about 0.6 points at 40%,
    # against 1.7 for 800) and scores on all 10,000 test images (0.5 against 1.1 for 2,000):
    # at `cpu` the seed sd of a design's test accuracy (0.012 on table 1.1) was about the
    # binomial SE of its 2,000-image subset alone. Evaluation is inference only (about a
    # third of a training image each). Both v2 rungs start every residual branch at zero
    # (zero_init_residual): res20/res26 diverged in their first epoch without it.
    "cpu-v2": Fidelity(
        name="cpu-v2", train_size=14_400, val_fraction=0.5, test_size=None, resolution=16,
        epochs=2, threads=1, latency_warmup=1, latency_reps=3, zero_init_residual=True,
    ),
    # The second CPU rung: 8x the cpu rung's training compute (28,800 train images, 4x as
    # many, for 4 epochs, 2x as many, at the same 16x16), sized so fig3 at one seed
    # finishes within an hour on 2 cores (two 1-thread trials at once). 32x32 instead would
    # cost 4-6x per image here (memory-bound), over the hour. Measured on more images than
    # the cpu rung: 7,200 validation images and the whole 10,000-image test set (binomial
    # standard error about 0.6 and 0.5 points at 40% accuracy, against 1.7 and 1.1 for
    # 800 and 2,000), since evaluation is cheap next to training.
    "cpu2": Fidelity(
        name="cpu2", train_size=36_000, val_fraction=0.2, test_size=None, resolution=16,
        epochs=4, threads=1, latency_warmup=1, latency_reps=3,
    ),
    # `cpu2` already selects on 7,200 held-out images and scores on all 10,000: its version
    # 2 changes only the start of the residual branches, as `cpu-v2`.
    "cpu2-v2": Fidelity(
        name="cpu2-v2", train_size=36_000, val_fraction=0.2, test_size=None, resolution=16,
        epochs=4, threads=1, latency_warmup=1, latency_reps=3, zero_init_residual=True,
    ),
    # The GPU rung (evaluators.multi_model trains a design's seeds at once). Full CIFAR-10
    # at 32x32 (45,000 train + 5,000 val, all 10,000 test), 15 epochs: half the `proxy`
    # rung, the least issue 13 accepts, so that fig3 (6 designs x 3 seeds, 12.2M training
    # images) can fit 10 minutes of one GPU. Batch 64 and lr 0.1 are the paper's (section
    # 4.1): the engine gets its parallelism from the model axis (3 seeds = 192 images per
    # kernel), so the recipe need not change, and every rung keeps one recipe. Deterministic
    # kernels off: they cost up to 2.6x on an H100 (docs/fidelities.md); curves then depend on
    # kernel timing, which the records say (fidelity_config["deterministic"] = false).
    "proxy15": Fidelity(
        name="proxy15", epochs=15, deterministic=False, latency_warmup=5, latency_reps=20,
    ),
    # Full data and resolution, 30 epochs: a GPU proxy for the paper's ranking.
    "proxy": Fidelity(name="proxy", epochs=30, latency_warmup=5, latency_reps=20),
    # Section 4.1 as written (CIFAR; for Tiny ImageNet the paper used epochs=200).
    "paper": Fidelity(name="paper", epochs=400, latency_warmup=5, latency_reps=20),
}

#: Rungs kept for the committed records they made, and the version new runs use instead
#: (what a command suggests as a cheaper rung skips them).
SUPERSEDED = {"cpu": "cpu-v2", "cpu2": "cpu2-v2"}


def get_fidelity(name: str) -> Fidelity:
    """The registered fidelity called ``name``.

    Raises:
        ValueError: ``name`` is not registered; the message lists the accepted names.
    """
    try:
        return FIDELITIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown fidelity {name!r}; accepted: {', '.join(FIDELITIES)}") from None


def with_changes(fidelity: Fidelity, **changes: Any) -> Fidelity:
    """``fidelity`` with fields changed and named after the changes (``proxy+epochs=2``),
    so that its records get their own keys. The one way a modified fidelity is named.

    Raises:
        ValueError: an unknown field (naming the accepted ones) or a bad value.
    """
    names = {f.name for f in dataclasses.fields(Fidelity)} - {"name"}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown fidelity field {unknown[0]!r}; accepted: "
                         f"{', '.join(sorted(names))}")
    if not changes:
        return fidelity
    suffix = "+".join(f"{k}={v}" for k, v in changes.items())
    return dataclasses.replace(fidelity, name=f"{fidelity.name}+{suffix}", **changes)
