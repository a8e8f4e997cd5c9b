"""Zero-cost proxies: scores of a design at initialisation, from one fixed batch, in seconds.

The proxies themselves, with the conventions they share (weights, data, BatchNorm, loss,
layers scored), are in :mod:`evaluators.proxies`; this module draws the batch, scores a
design with every proxy, the cost baselines and the paper's quantities, and makes the record.
:func:`score_design` returns a plain dict per (design, seed); ``studies/zero_cost.py`` is
the command line over many.

Example:
    >>> ZeroCostConfig().batch_size, tuple(SCORES)[:3]
    (64, ('synflow', 'naswot', 'snip'))
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

import search_space as ss
from evaluators import proxies
from evaluators.augment import channel_stats, normalize, resize
from evaluators.catalog import DEFAULT_DATASET
from evaluators.data import Dataset
from evaluators.record import Result, describe_info, make_result
from evaluators.scores import SCORES, compute_groups

#: Short names of the config's fields in a fidelity name (``zc-r16-b32``): every field but
#: the dataset (a record's key holds it apart).
ABBREVIATIONS = {"batch_size": "b", "batch_seed": "s", "resolution": "r", "zen_alpha": "za",
                 "zen_batch_size": "zb", "jacob_k": "k", "latency_warmup": "lw",
                 "latency_reps": "l", "threads": "t"}


@dataclass(frozen=True)
class ZeroCostConfig:
    """How the proxies are computed; recorded with every score (the ``zc`` fidelity).

    Its :attr:`name` is the fidelity its records are keyed by: ``zc`` for the defaults,
    else ``zc-`` and each changed field (:data:`ABBREVIATIONS`), so records of two configs
    never share a key:

    >>> ZeroCostConfig().name, ZeroCostConfig(resolution=16, batch_size=32).name
    ('zc', 'zc-b32-r16')
    """

    dataset: str = DEFAULT_DATASET  # whose train split gives the batch
    batch_size: int = 64  # images in the batch; 64 as NAS-Bench-Suite-Zero (NASLib) uses
    #                       for every proxy (NASWOT's paper used 128: K is batch x batch)
    batch_seed: int = 0  # draws the batch's indices from the train split, once
    resolution: int | None = None  # pixels per side of the batch; None = the net's own input
    #                                size (32 for CIFAR), as the proxies' papers use
    zen_alpha: float = 0.01  # Zen-NAS's perturbation scale alpha (their default, 1e-2)
    zen_batch_size: int = 16  # Gaussian inputs per Zen-score draw (Zen-NAS's default, 16)
    jacob_k: float = 1e-5  # jacob_cov's eigenvalue offset k (Mellor et al. 2020 v1)
    latency_warmup: int = 1  # as the cpu fidelity measures latency
    latency_reps: int = 3  # 0 skips latency (null scores)
    threads: int = 1  # torch CPU threads (one, as the cpu fidelity: shared 2-core machine)

    def __post_init__(self) -> None:
        for field in ("batch_size", "zen_batch_size", "threads"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}={getattr(self, field)!r}; expected an integer >= 1")
        for field in ("latency_warmup", "latency_reps"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field}={getattr(self, field)!r}; expected an integer >= 0")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}; NASWOT and jacob_cov compare "
                             "images, so a batch needs at least 2")
        if self.resolution is not None and self.resolution < 1:
            raise ValueError(f"resolution={self.resolution!r}; expected None or >= 1")

    @property
    def name(self) -> str:
        """The fidelity name: ``zc``, or ``zc-`` with every field changed from the default,
        in :data:`ABBREVIATIONS` order (``zc-b16-r16-l1``)."""
        default = ZeroCostConfig()
        parts = [f"{short}{getattr(self, f):g}" if isinstance(getattr(self, f), float)
                 else f"{short}{getattr(self, f)}"
                 for f, short in ABBREVIATIONS.items() if getattr(self, f) != getattr(default, f)]
        return "-".join(["zc", *parts])

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict, its ``name`` first."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True, eq=False)
class ProxyBatch:
    """The fixed batch: normalised images, labels, and the train-split indices they are."""

    images: torch.Tensor  # B x 3 x R x R float32, normalised
    labels: torch.Tensor  # B int64
    indices: tuple[int, ...]  # rows of the official train split
    dataset: str


def proxy_batch(dataset: Dataset, config: ZeroCostConfig | None = None) -> ProxyBatch:
    """The batch every proxy reads: ``config.batch_size`` train images drawn by
    ``config.batch_seed``, at ``config.resolution`` (None: the dataset's own), normalised by
    the whole train split's channel statistics.

    Args:
        dataset: the loaded dataset (``evaluators.load_dataset``).
        config: batch size, seed, resolution (default ``ZeroCostConfig()``).
    """
    config = config or ZeroCostConfig()
    n = dataset.train_images.shape[0]
    if config.batch_size > n:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n} train images")
    gen = torch.Generator().manual_seed(config.batch_seed)
    idx = torch.randperm(n, generator=gen)[: config.batch_size]
    size = config.resolution or dataset.resolution
    mean, std = channel_stats(dataset.train_images)
    images = normalize(resize(dataset.train_images[idx], size), mean, std)
    return ProxyBatch(images, dataset.train_labels[idx].clone(), tuple(idx.tolist()),
                      dataset.name)


# --- the proxies ---------------------------------------------------------------------------


def score_design(design: ss.Design | str, seed: int, batch: ProxyBatch,
                 config: ZeroCostConfig | None = None, *,
                 num_classes: int = 10, input_size: int | None = None) -> dict[str, Any]:
    """Every score of one design at one initialisation seed, as a plain dict.

    Returns:
        ``{"design_id", "seed", "scores": {name: float | None for name in SCORES},
        "seconds": {name: float}, "errors": {name: message}, "wall_s"}``. A proxy that
        fails (a singular NASWOT kernel, an overflow) scores None and says why in
        ``errors``; the others are unaffected.
    """
    start = time.perf_counter()
    config = config or ZeroCostConfig()
    design = ss.parse(design) if isinstance(design, str) else design
    info = ss.describe(design, num_classes=num_classes, input_size=input_size)
    scores: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(seed)  # as evaluators.evaluate builds the net it trains
        # The proxies all run on the reference implementation; the default one computes
        # the same function as dense C x C products, measured 2-3x faster for the 40k
        # plain8 nets and 6x slower for wide ones (res20-c320-k1.16.16, 1280 channels in
        # its last stage). Latency is of the default one, as training records measure it.
        model = ss.build(design, num_classes=num_classes, impl="reference",
                         input_size=info["input_size"])
        inputs = proxies.ScoreInputs(design, info, model, batch.images, batch.labels, seed,
                                     config, num_classes)
        for function, names in compute_groups():  # the registry's order (evaluators.scores)
            job = getattr(proxies, function)
            if SCORES[names[0]].needs == "design":  # describe()'s own values, not timed
                out = job(inputs)
                scores.update({n: out[n] for n in names})
            else:
                _run(names, lambda job=job: job(inputs), scores, seconds, errors)
    finally:
        torch.set_num_threads(saved_threads)
    return {"design_id": design.id, "seed": seed,
            "scores": {name: scores.get(name) for name in SCORES},
            "seconds": seconds, "errors": errors, "wall_s": time.perf_counter() - start}


def zc_record(design: ss.Design | str, seed: int, batch: ProxyBatch,
              config: ZeroCostConfig | None = None, *, num_classes: int = 10,
              input_size: int | None = None) -> Result:
    """:func:`score_design` as a record of the fidelity ``config.name`` (``zc``): a
    :class:`evaluators.record.Result` whose ``zero_cost`` holds ``{"scores", "seconds",
    "errors"}`` of :func:`score_design`.

    Keyed like every record by (design, fidelity, dataset, seed). Status "ok" with an empty
    curve and no accuracies; "failed" (``zero_cost`` None) only when the design itself
    cannot be scored (a proxy failing alone is a None score, not a failure).
    ``fidelity_config`` is the config plus the batch's train-split indices; the latencies
    are also the record's own ``latency_b1_ms``/``latency_b64_ms``, as in a training record.
    """
    from evaluators.evaluation import failure_reason

    config = config or ZeroCostConfig()
    design = ss.parse(design) if isinstance(design, str) else design
    start = time.perf_counter()
    try:
        out = score_design(design, seed, batch, config, num_classes=num_classes,
                           input_size=input_size)
        zc, reason = {k: out[k] for k in ("scores", "seconds", "errors")}, None
    except Exception as exc:  # a failed design is a record, as in evaluate()
        zc, reason = None, failure_reason(exc)
    scores = zc["scores"] if zc else {}
    wall_s = time.perf_counter() - start  # the scoring, not describe() below
    return make_result(
        describe_info(design, num_classes, input_size), fidelity=config.name,
        fidelity_config={**config.to_dict(), "batch_indices": list(batch.indices)},
        dataset=batch.dataset, seed=seed, reason=reason, wall_s=wall_s,
        latency={1: scores.get("latency_b1_ms"), 64: scores.get("latency_b64_ms")},
        device="cpu", torch_version=torch.__version__, zero_cost=zc)


def _run(names: tuple[str, ...], job: Callable[[], Any], scores: dict, seconds: dict,
         errors: dict) -> None:
    """Run one proxy; a failure or a non-finite value scores None with its reason."""
    t0 = time.perf_counter()
    try:
        out = job()
        values = out if isinstance(out, dict) else {names[0]: out}
    except Exception as exc:  # one proxy failing must not lose the others
        values = {n: None for n in names}
        for n in names:
            errors[n] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    seconds[names[0] if len(names) == 1 else "+".join(names)] = time.perf_counter() - t0
    for n in names:
        v = values.get(n)
        if v is not None and not math.isfinite(v):
            errors[n] = f"non-finite value {v}"
            v = None
        scores[n] = None if v is None else float(v)


__all__ = [
    "ABBREVIATIONS",
    "ProxyBatch",
    "ZeroCostConfig",
    "proxy_batch",
    "score_design",
    "zc_record",
]
