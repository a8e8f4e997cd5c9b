"""How long a trial takes: a design's work per image, a fidelity's images, a machine's speed.

Pure functions, no torch: ``studies`` estimates sweeps with them (``--dry-run``, a time
budget) and ``analysis`` can read them; the machine's speed comes from a
:class:`Calibration` that ``evaluators.calibrate`` measures (a few seconds of training steps
of probe nets, cached per machine) and that records refine (:func:`refit`).

The model. On a CPU these nets are memory-bound (``docs/performance.md``): an IGCV2 block
costs what its memory passes cost, and the fast path (``search_space.fast``) computes each
*run* of a block (a spatial conv, then every 1x1 conv, BN and shuffle up to the next ReLU)
as one dense GEMM after one Gram matrix. So a trial's seconds are

    overhead + scale * sum over the trial's images of (a * elements + b * macs + c)

where, per image at the trial's resolution, ``elements`` counts the activation values the
block path reads or writes (a run's input and output; on the reference path every conv's
output and its BN, shuffle and ReLU passes), ``macs`` the multiply-adds it performs (the
spatial convs, the run GEMMs and, in training, their Gram matrices; on the reference path
each conv's) and ``c`` a per-image constant (the step's fixed costs over the batch). The
fast path also composes each run's dense C x C matrix once per training step, in float64
(C^3 multiply-adds per 1x1 convolution and product, forward and backward): shared by the
batch's images, negligible at C=144, and what makes wide nets slow on it (C=1504: tens of
seconds a step whatever the batch). (a, b, c) are measured separately for training steps
(forward, backward, update) and for evaluation forwards; the images are the fidelity's:
train images x epochs, validation images x epochs and the test images (evaluation), and
the latency passes. FLOPs alone predict badly here: Xception C=64 and IGCV2 C=144 have
about the same multiply-adds and differ 3x in time (``docs/studies.md`` has the measured
errors).

Example:
    >>> cal = Calibration(machine="m", torch_version="2", device="cpu", threads=1,
    ...                   paths=("fused", "fused"), resolution=16, batch_size=64,
    ...                   train=(4e-9, 2e-10, 1.5e-3), eval=(0.0, 1e-10, 3e-4))
    >>> cpu = {"train_size": 8000, "val_fraction": 0.1, "test_size": 2000, "resolution": 16,
    ...        "epochs": 2, "latency_warmup": 1, "latency_reps": 3, "latency_resolution": None}
    >>> wide, narrow = (predict_seconds(d, cpu, "cifar10", cal)
    ...                 for d in ("plain8-c144-k1.12.12", "plain8-c64-k1.64"))
    >>> round(wide), round(narrow), wide > 2 * narrow
    (289, 92, True)
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evaluators.catalog import DATASETS, dataset_spec
from evaluators.record import LATENCY_BATCHES
from search_space.design import Design, parse
from search_space.plan import net_plan
from search_space.work import COMPOSE_MACS, PATHS, block_work, choose_path

DEFAULT_OVERHEAD_S = 5.0  # per trial: loading the data, splits, building the net (records:
#                           wall_s less the epochs, test and latency passes, 3-6 s here)


@dataclass(frozen=True)
class Work:
    """Per image at one resolution: what a training step and an evaluation forward do."""

    train_elements: float  # activation values read or written, forward
    train_macs: float  # multiply-adds, forward (the Gram matrices included)
    eval_elements: float
    eval_macs: float

    def __add__(self, other: Work) -> Work:
        return Work(*(a + b for a, b in zip(dataclasses.astuple(self),
                                            dataclasses.astuple(other), strict=True)))


def per_image_work(design: Design | str, *, resolution: int | None = None,
                   num_classes: int = 10, input_size: int | None = None,
                   paths: tuple[str, str] = ("fused", "fused"), batch_size: int = 64,
                   eval_batch_size: int = 500) -> Work:
    """The work of one image through ``design`` (built for ``input_size``) at ``resolution``.

    ``paths``: (training, evaluation) block path, each "fused", "reference", "grouped"
    (training only) or "auto" (the path ``search_space.work.choose_path`` picks per block,
    as FastBlock does).
    ``batch_size``: training images per step, which share the fused path's per-step work;
    ``eval_batch_size``: images per evaluation forward (for "auto" only).

    Example:
        >>> w = per_image_work("plain8-c64-k1.64", resolution=16)
        >>> w.train_macs > w.eval_macs  # training adds the Gram matrix of every run
        True
    """
    by_path = work_by_path(design, resolution=resolution, num_classes=num_classes,
                           input_size=input_size, paths=paths, batch_size=batch_size,
                           eval_batch_size=eval_batch_size)
    return by_path["fused"] + by_path["reference"] + by_path["grouped"]


def work_by_path(design: Design | str, *, resolution: int | None = None,
                 num_classes: int = 10, input_size: int | None = None,
                 paths: tuple[str, str] = ("fused", "fused"), batch_size: int = 64,
                 eval_batch_size: int = 500) -> dict[str, Work]:
    """:func:`per_image_work` split by the path each block takes: {"fused": ..., "reference":
    ...}. The stem is counted with the first path of ``paths`` ("fused" for "auto")."""
    d = parse(design) if isinstance(design, str) else design
    plan = net_plan(d, num_classes, input_size)
    scale = ((resolution or plan.input_size) / plan.input_size) ** 2  # every layer's pixels
    for path in paths:
        if path not in (*PATHS, "auto"):
            raise ValueError(f"path {path!r}; accepted: {', '.join(PATHS)}, auto")
    totals = {p: [0.0, 0.0, 0.0, 0.0] for p in PATHS}
    stem_path = "fused" if paths[0] == "auto" else paths[0]
    stem_elements = (plan.stem.cin + 4 * plan.stem.cout) * plan.stem.hw_out ** 2  # conv, BN,
    #                                                                     ReLU: 3 passes + in
    for i in (0, 2):
        totals[stem_path][i] += stem_elements * scale
        totals[stem_path][i + 1] += plan.stem.macs * scale
    for block in (*plan.blocks, *plan.head):
        for mode, path in enumerate(paths):  # 0: training, 1: evaluation
            training = mode == 0
            if path == "auto":
                path = choose_path(block, training=training, scale=scale,
                                   batch=batch_size if training else eval_batch_size)
            w = block_work(block, path)
            macs = w.macs * scale
            if training and path == "fused":  # each run's Gram matrix, and the composition
                macs += w.gram * scale + COMPOSE_MACS * w.compose / batch_size  # once a step
            totals[path][2 * mode] += w.elements * scale
            totals[path][2 * mode + 1] += macs
    return {p: Work(*t) for p, t in totals.items()}


@dataclass(frozen=True)
class TrialShape:
    """The images a trial passes through the net, from its fidelity and dataset."""

    train_images: int  # per epoch
    epochs: int
    eval_images: int  # validation images x epochs + test images
    val_images: int  # drawn for validation (evaluated after every epoch)
    resolution: int
    latency_images: int  # (warm-up + timed passes) x the latency batch sizes
    latency_resolution: int


def trial_shape(fidelity: Mapping[str, Any], dataset: str) -> TrialShape:
    """:class:`TrialShape` of a fidelity config (``Fidelity.to_dict()``) on ``dataset``.

    Sizes as ``evaluators.splits.make_splits`` draws them.

    Example:
        >>> cpu = {"train_size": 8000, "val_fraction": 0.1, "test_size": 2000,
        ...        "resolution": 16, "epochs": 2, "latency_warmup": 1, "latency_reps": 3,
        ...        "latency_resolution": None}
        >>> shape = trial_shape(cpu, "cifar10")
        >>> shape.train_images, shape.eval_images, shape.latency_images
        (7200, 3600, 260)
    """
    spec = dataset_spec(dataset)  # ValueError: unknown
    n_train, n_test, side = spec.train_size, spec.test_size, spec.side
    drawn = min(fidelity.get("train_size") or n_train, n_train)
    val = max(1, round(fidelity.get("val_fraction", 0.1) * drawn))
    test = min(fidelity.get("test_size") or n_test, n_test)
    epochs = int(fidelity["epochs"])
    passes = (fidelity.get("latency_warmup", 0) + fidelity.get("latency_reps", 0)
              if fidelity.get("latency_reps", 0) else 0)
    return TrialShape(
        train_images=drawn - val, epochs=epochs, eval_images=val * epochs + test,
        val_images=val,
        resolution=fidelity.get("resolution") or side,
        latency_images=passes * sum(LATENCY_BATCHES),
        latency_resolution=fidelity.get("latency_resolution") or side)


@dataclass(frozen=True)
class Calibration:
    """A machine's speed for one (device, threads, block paths), and what refines it.

    ``train`` and ``eval``: seconds per (activation element, multiply-add, image) of a
    training step and of an evaluation forward, measured at ``resolution`` and
    ``batch_size`` by ``evaluators.calibrate``. ``scale`` multiplies the compute part:
    1 as measured, then the median of recorded / predicted over ``scale_records`` records
    (trials that ran beside others, on a busy machine, take longer than the probes).
    """

    machine: str  # "hostname|cpu model|cores"
    torch_version: str
    device: str  # "cpu", "cuda:NAME"
    threads: int
    paths: tuple[str, str]  # (training, evaluation) block path
    resolution: int
    batch_size: int
    train: tuple[float, float, float]
    eval: tuple[float, float, float]
    overhead_s: float = DEFAULT_OVERHEAD_S
    scale: float = 1.0
    scale_records: int = 0
    created: str = ""
    # With paths "auto", ``train`` and ``eval`` are the fused path's coefficients and these
    # the reference path's (per element, per multiply-add; the per-image term is ``train``'s).
    ref_train: tuple[float, float, float] | None = None
    ref_eval: tuple[float, float, float] | None = None
    # With paths "auto": the grouped path's training coefficients (search_space.grouped; it
    # has no eval path). None (a calibration made before it): the reference path's.
    grp_train: tuple[float, float, float] | None = None
    # ``search_space.work.speed_code()`` of the code measured ("": a calibration made before
    # it was recorded; the cache measures again rather than trust it).
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for key in ("paths", "train", "eval", "ref_train", "ref_eval", "grp_train"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def image_seconds(design: Design | str, calibration: Calibration, *, resolution: int,
                  batch_size: int = 64, eval_batch_size: int = 500, num_classes: int = 10,
                  input_size: int = 32) -> tuple[float, float]:
    """Seconds of one image's training step and of its evaluation forward (scale 1), each
    block on the path the calibration's ``paths`` give it."""
    auto = "auto" in calibration.paths
    if auto and (calibration.ref_train is None or calibration.ref_eval is None):
        raise ValueError("a calibration of the 'auto' paths needs ref_train and ref_eval")
    works = work_by_path(design, resolution=resolution, num_classes=num_classes,
                         input_size=input_size, paths=calibration.paths,
                         batch_size=batch_size, eval_batch_size=eval_batch_size)
    train, evals = calibration.train[2], calibration.eval[2]  # per image, once
    for path, w in works.items():
        tc, ec = calibration.train, calibration.eval
        if auto and path in ("reference", "grouped"):
            tc, ec = calibration.ref_train, calibration.ref_eval
            if path == "grouped" and calibration.grp_train is not None:
                tc = calibration.grp_train
        train += tc[0] * w.train_elements + tc[1] * w.train_macs
        evals += ec[0] * w.eval_elements + ec[1] * w.eval_macs
    return train, evals


def compute_seconds(design: Design | str, fidelity: Mapping[str, Any], dataset: str,
                    calibration: Calibration, *, num_classes: int | None = None) -> float:
    """The trial's compute seconds as the probes ran them (no overhead, scale 1)."""
    shape = trial_shape(fidelity, dataset)

    def per_image(resolution: int) -> tuple[float, float]:
        return image_seconds(design, calibration, resolution=resolution,
                             batch_size=int(fidelity.get("batch_size", 64)),
                             eval_batch_size=int(fidelity.get("eval_batch_size", 500)),
                             num_classes=num_classes or DATASETS[dataset].classes,
                             input_size=DATASETS[dataset].side)

    train, evals = per_image(shape.resolution)
    seconds = shape.train_images * shape.epochs * train + shape.eval_images * evals
    if shape.latency_images:
        lat = evals if shape.latency_resolution == shape.resolution else per_image(
            shape.latency_resolution)[1]
        seconds += shape.latency_images * lat
    return seconds


def predict_seconds(design: Design | str, fidelity: Mapping[str, Any], dataset: str,
                    calibration: Calibration, *, num_classes: int | None = None) -> float:
    """Predicted wall seconds of one trial of ``design`` (``Fidelity.to_dict()`` config)."""
    return calibration.overhead_s + calibration.scale * compute_seconds(
        design, fidelity, dataset, calibration, num_classes=num_classes)


def refit(calibration: Calibration, records: Iterable[Mapping[str, Any]]) -> Calibration:
    """``calibration`` with ``scale`` refitted to finished records of this machine.

    Uses records with ``status`` ok, a ``wall_s`` and a ``fidelity_config``; the new scale
    is the median over them of (wall_s - overhead) / compute seconds. No usable record:
    the calibration unchanged.
    """
    ratios = []
    for rec in records:
        if rec.get("status") != "ok" or not rec.get("wall_s") or not rec.get("fidelity_config"):
            continue
        compute = compute_seconds(rec["design_id"], rec["fidelity_config"], rec["dataset"],
                                  calibration, num_classes=rec.get("num_classes"))
        if compute > 0:
            ratios.append((float(rec["wall_s"]) - calibration.overhead_s) / compute)
    if not ratios:
        return calibration
    scale = statistics.median(ratios)
    if not (math.isfinite(scale) and scale > 0):
        return calibration
    return dataclasses.replace(calibration, scale=scale, scale_records=len(ratios))
