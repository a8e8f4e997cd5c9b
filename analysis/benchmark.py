"""A table you query instead of training: one record per (design_id, fidelity, dataset, seed).

As NAS-Bench-201 / NATS-Bench's ``get_more_info(arch, dataset, epochs)``: :meth:`Benchmark.load`
reads a run directory, a records export (parquet or CSV) or a checksummed release
(analysis.release) and builds, once, a dict keyed by (design_id, fidelity, dataset) whose value
holds that key's seeds as numpy arrays (final values, and per-epoch curves padded with NaN).
A query is then a dict look-up and a few array reads: microseconds, no pandas.

Example:
    >>> from analysis.benchmark import Benchmark                         # doctest: +SKIP
    >>> bench = Benchmark.load("releases/igcbench-1.0.json")
    >>> e = bench.query("plain8-c144-k1.12.12", fidelity="proxy", dataset="cifar10")
    >>> e.val_acc, e.val_acc_std, e.seeds, e.train_seconds        # mean and std over seeds
    >>> bench.query("plain8-c144-k1.12.12", fidelity="proxy", seed=0, epoch=10).val_acc
    >>> bench.designs(L=3, family="igcv2", params_max=650_000)
    >>> bench.best("val_acc", budget=650_000).design_id
    >>> [e.design_id for e in bench.pareto([("val_acc", "max"), ("params", "min")])]
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from . import release
from .load import DESCRIBE_KEYS, frame_from_records, load_results

CURVE_METRICS = ("val_acc", "train_acc", "train_loss", "seconds")  # per epoch, in each record
_FINAL = ("val_acc", "test_acc", "wall_s", "latency_b1_ms", "latency_b64_ms")  # per record
_CACHE_SIZE = 1 << 16  # answers memoised; cleared when full (a sweep over every epoch of a
# big table would otherwise keep them all)


class TableKeyError(KeyError):
    """A design, fidelity, dataset, seed or epoch the table does not have.

    A KeyError whose message (unquoted, unlike KeyError's) names what the table does have.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, eq=False)
class Curve:
    """Per-epoch values of one seed, or their mean over seeds; aligned read-only arrays.

    ``seconds`` is the training time of each epoch (what a replay's simulated clock adds).
    """

    epoch: np.ndarray
    val_acc: np.ndarray
    train_acc: np.ndarray
    train_loss: np.ndarray
    seconds: np.ndarray


@dataclass(frozen=True, eq=False)
class Entry:
    """The answer to a query: one seed's record, or the mean (and std) over the ok seeds.

    At ``epoch=None`` (final) the accuracies are the record's final ``val_acc``/``test_acc``;
    at a given epoch they come from the curve, and ``test_acc`` (measured once, after
    training) is given only when that epoch is the last. Spreads (``*_std``, ddof = 1) are
    None for a one-seed answer. Costs and the other describe() fields are in ``info``
    (``params`` and ``flops`` also as properties).

    Attributes:
        design_id, fidelity, dataset: the key.
        seeds: the seed answered, or the ok seeds averaged (empty when none is ok).
        epoch: the epoch answered (for a final answer, the number of epochs trained).
        status: the record's status; for an average, 'ok' when any seed is ok.
        train_seconds: training seconds summed over epochs 1..epoch.
        n_failed: seeds of this key whose status is not 'ok' (0 for a one-seed answer).
        curve: the whole curve (one seed's, or the per-epoch mean over the ok seeds).
    """

    design_id: str
    fidelity: str
    dataset: str
    seeds: tuple[int, ...]
    epoch: int | None
    status: str
    val_acc: float | None
    test_acc: float | None
    train_acc: float | None
    train_loss: float | None
    train_seconds: float | None
    wall_s: float | None
    latency_b1_ms: float | None
    latency_b64_ms: float | None
    val_acc_std: float | None
    test_acc_std: float | None
    train_acc_std: float | None
    train_loss_std: float | None
    train_seconds_std: float | None
    n_failed: int
    info: Mapping[str, Any]
    curve: Curve | None

    @property
    def params(self) -> float | None:
        return self.info.get("params")

    @property
    def flops(self) -> float | None:
        return self.info.get("flops")

    def metric(self, name: str) -> Any:
        """A field of this answer or of its describe() info, by name (for best/pareto)."""
        if name in _ENTRY_FIELDS:
            return getattr(self, name)
        if name in self.info:
            return self.info[name]
        raise TableKeyError(
            f"no metric {name!r}; accepted: {', '.join(sorted(_METRICS | set(self.info)))}"
        )


_ENTRY_FIELDS = frozenset(f.name for f in fields(Entry)) - {"info", "curve"}
_METRICS = frozenset(
    ("val_acc", "test_acc", "train_acc", "train_loss", "train_seconds", "wall_s",
     "latency_b1_ms", "latency_b64_ms")
)  # fmt: skip


class _Cell:
    """Every seed of one (design_id, fidelity, dataset), as arrays indexed [seed row, epoch]."""

    __slots__ = ("seeds", "row", "status", "ok", "final", "curve", "cum_seconds", "length",
                 "info")  # fmt: skip

    def __init__(self, rows: list[dict[str, Any]], info: dict[str, Any]):
        rows = sorted(rows, key=lambda r: r["seed"])
        self.seeds = tuple(int(r["seed"]) for r in rows)
        self.row = {s: i for i, s in enumerate(self.seeds)}
        self.status = tuple(str(r["status"]) for r in rows)
        self.ok = np.array([s == "ok" for s in self.status])
        self.final = {k: _frozen([_float(r.get(k)) for r in rows]) for k in _FINAL}
        curves = [r["curve"] for r in rows]
        self.length = np.array([len(c) for c in curves])
        width = int(self.length.max(initial=0))
        self.curve = {
            k: _frozen(
                [_floats([p.get(k) for p in c]) + [math.nan] * (width - len(c)) for c in curves],
                shape=(len(rows), width),
            )
            for k in CURVE_METRICS
        }
        cum = np.cumsum(np.nan_to_num(self.curve["seconds"]), axis=1)
        cum[np.arange(width)[None, :] >= self.length[:, None]] = math.nan  # past a short curve
        self.cum_seconds = _frozen(cum)
        self.info = info


class Benchmark:
    """A table of result records, indexed for microsecond queries.

    Build one with :meth:`load` (a path) or :meth:`from_frame` (a results DataFrame).
    ``fidelity=`` and ``dataset=`` may be left out of every method when the table has only
    one of them.

    Attributes:
        frame: the records, one row per (design_id, fidelity, dataset, seed).
        manifest: the release manifest when loaded from a release, else None.
        source: what it was loaded from (a path, or None).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        manifest: Mapping[str, Any] | None = None,
        source: str | None = None,
    ):
        self.frame = frame
        self.manifest = MappingProxyType(dict(manifest)) if manifest is not None else None
        self.source = source
        self._cells = _index(frame)
        self._by_design: dict[str, list[tuple[str, str]]] = {}
        for d, f, ds in self._cells:
            self._by_design.setdefault(d, []).append((f, ds))
        self.design_ids: tuple[str, ...] = tuple(sorted(self._by_design))
        self.fidelities: tuple[str, ...] = tuple(sorted({k[1] for k in self._cells}))
        self.datasets: tuple[str, ...] = tuple(sorted({k[2] for k in self._cells}))
        self._cache: dict[tuple[Any, ...], Entry] = {}
        self._curves: dict[tuple[Any, ...], Curve | None] = {}

    # --- construction --------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Benchmark:
        """Load a run directory (RUN_DIR/records/*.json), a records export (.parquet, .csv)
        or a release (its manifest .json, its directory, or its parquet next to the
        manifest). A release's checksum is verified (release.ChecksumError on a mismatch).

        Raises:
            FileNotFoundError: nothing at ``path``, or a directory with neither records/ nor
                a release manifest.
            ValueError: a file of another kind, or a corrupt or inconsistent release.
        """
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"no table at {p}")
        if p.is_dir() and (p / "records").is_dir():
            return cls(load_results(p), source=str(p))
        manifest = release.find_manifest(p)
        if manifest is not None:
            rel = release.read_release(manifest)
            return cls(rel.records, manifest=rel.manifest, source=str(rel.path))
        if p.is_file() and p.suffix.lower() in release.EXPORT_SUFFIXES:
            return cls(release.read_records(p), source=str(p))
        raise (FileNotFoundError if p.is_dir() else ValueError)(
            f"{p} is not a table: expected a run directory with records/, a release (its "
            f"manifest .json or directory) or a records export "
            f"({', '.join(release.EXPORT_SUFFIXES)})"
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | Iterable[Mapping[str, Any]]) -> Benchmark:
        """From a results DataFrame (load_results) or an iterable of record dicts."""
        if isinstance(frame, pd.DataFrame):
            frame = frame.to_dict("records")
        return cls(frame_from_records(frame))

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"Benchmark({len(self.design_ids)} designs, {len(self)} records, "
            f"fidelities={list(self.fidelities)}, datasets={list(self.datasets)})"
        )

    # --- queries -------------------------------------------------------------------------

    def query(
        self,
        design_id: str,
        *,
        fidelity: str | None = None,
        dataset: str | None = None,
        seed: int | None = None,
        epoch: int | None = None,
    ) -> Entry:
        """One design's record at a fidelity and dataset.

        Args:
            design_id: the canonical design id.
            fidelity, dataset: the slice; may be left out when the table has only one.
            seed: one seed's record; None: the mean and std over the ok seeds.
            epoch: 1-based epoch of the curve; None: the final values.

        Raises:
            TableKeyError: an unknown design (naming the closest ids), fidelity, dataset, seed
                or epoch (naming those that exist).
        """
        fidelity, dataset = self.resolve(fidelity, dataset)
        memo = (design_id, fidelity, dataset, seed, epoch)
        hit = self._cache.get(memo)
        if hit is not None:
            return hit
        cell = self._cells.get((design_id, fidelity, dataset))
        if cell is None:
            raise self._missing(design_id, fidelity, dataset)
        if seed is None:
            rows = np.flatnonzero(cell.ok)
        elif seed in cell.row:
            rows = np.array([cell.row[seed]])
        else:
            raise TableKeyError(
                f"{design_id} at {fidelity}/{dataset} has no seed {seed!r}; "
                f"seeds: {', '.join(map(str, cell.seeds))}"
            )
        key = (design_id, fidelity, dataset)
        curve = self._curves.get((key, seed), False)
        if curve is False:  # one Curve per (key, seed), shared by the answers at every epoch
            curve = self._curves[(key, seed)] = _curve(cell, rows)
        entry = _entry(cell, key, rows, epoch, curve, single=seed is not None)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[memo] = entry
        return entry

    def designs(
        self, *, fidelity: str | None = None, dataset: str | None = None, **filters: Any
    ) -> list[str]:
        """Design ids (sorted) with a record at the slice whose describe() fields match.

        A filter ``field=value`` keeps equal values; ``field=[a, b]`` (a list, tuple or set)
        keeps any of them; ``field_min=x`` / ``field_max=x`` keep x <= field / field <= x.

        Example:
            >>> bench.designs(L=3, family="igcv2", params_max=650_000)  # doctest: +SKIP
        """
        fidelity, dataset = self.resolve(fidelity, dataset)
        tests = [self._filter(name, value) for name, value in filters.items()]
        return sorted(
            d
            for (d, f, ds), cell in self._cells.items()
            if f == fidelity and ds == dataset and all(t(cell.info) for t in tests)
        )

    def best(
        self,
        metric: str = "val_acc",
        budget: float | None = None,
        *,
        fidelity: str | None = None,
        dataset: str | None = None,
        mode: str | None = None,
        cost: str = "params",
        epoch: int | None = None,
        **filters: Any,
    ) -> Entry:
        """The design with the best mean ``metric`` over ok seeds whose ``cost`` <= budget.

        ``mode`` is 'max' or 'min'; by default 'max' for a metric ending in 'acc', else 'min'.
        Ties go to the lower cost, then the smaller id. ``filters`` as in :meth:`designs`.

        Raises:
            ValueError: no ok design fits the budget (naming the cheapest there is).
        """
        mode = mode or ("max" if metric.endswith("acc") else "min")
        sign = _sign(mode)
        entries = self._entries(fidelity, dataset, epoch, filters)
        fits = [
            e
            for e in entries
            if budget is None or ((c := _num(e.metric(cost))) is not None and c <= budget)
        ]
        scored = [
            (sign * v, _num(e.metric(cost)) or 0.0, e.design_id, e)
            for e in fits
            if (v := _num(e.metric(metric))) is not None
        ]
        if not scored:
            costs = [c for e in entries if (c := _num(e.metric(cost))) is not None]
            raise ValueError(
                f"no ok design with {cost} <= {budget} and a {metric}; the "
                f"cheapest has {cost} {min(costs) if costs else 'unknown'}"
            )
        return min(scored, key=lambda t: t[:3])[3]

    def pareto(
        self,
        metrics: Sequence[tuple[str, str]],
        *,
        fidelity: str | None = None,
        dataset: str | None = None,
        epoch: int | None = None,
        **filters: Any,
    ) -> list[Entry]:
        """The designs no other design dominates on ``metrics`` (means over ok seeds).

        Args:
            metrics: (name, 'max' | 'min') pairs, e.g. [('val_acc', 'max'), ('params', 'min')].

        Returns:
            The front, best first by the first metric (then by id). Equal points all stay.
        """
        if not metrics:
            raise ValueError("pareto needs at least one (metric, 'max'|'min') pair")
        signs = np.array([_sign(mode) for _, mode in metrics])
        entries = [
            e
            for e in self._entries(fidelity, dataset, epoch, filters)
            if all(_num(e.metric(m)) is not None for m, _ in metrics)
        ]
        if not entries:
            return []
        # Minimise sign * value throughout; [i, j]: j dominates i.
        x = np.array([[_num(e.metric(m)) for m, _ in metrics] for e in entries]) * signs
        dom = (x[None, :, :] <= x[:, None, :]).all(-1) & (x[None, :, :] < x[:, None, :]).any(-1)
        front = [e for e, d in zip(entries, dom.any(axis=1), strict=True) if not d]
        return sorted(front, key=lambda e: (signs[0] * e.metric(metrics[0][0]), e.design_id))

    def fidelity_config(self, fidelity: str | None = None) -> dict[str, Any] | None:
        """The frozen config the fidelity ran with (from the manifest or the first record)."""
        fidelity = fidelity or _only("fidelity", self.fidelities)
        if self.manifest is not None and fidelity in self.manifest.get("fidelities", {}):
            return dict(self.manifest["fidelities"][fidelity] or {})
        rows = self.frame[self.frame["fidelity"].eq(fidelity)]["fidelity_config"]
        return next((dict(c) for c in rows if isinstance(c, Mapping)), None)

    # --- helpers -------------------------------------------------------------------------

    def resolve(self, fidelity: str | None = None, dataset: str | None = None) -> tuple[str, str]:
        """The (fidelity, dataset) the methods use for these arguments: a None stands for the
        table's only fidelity (dataset); with several, it is a ValueError naming them."""
        return (
            fidelity if fidelity is not None else _only("fidelity", self.fidelities),
            dataset if dataset is not None else _only("dataset", self.datasets),
        )

    def _missing(self, design_id: str, fidelity: str, dataset: str) -> TableKeyError:
        if design_id in self._by_design:
            has = ", ".join(f"{f}/{d}" for f, d in sorted(self._by_design[design_id]))
            return TableKeyError(
                f"{design_id} has no record at fidelity {fidelity!r}, dataset "
                f"{dataset!r}; it has {has} (fidelities in the table: "
                f"{', '.join(self.fidelities)})"
            )
        close = difflib.get_close_matches(design_id, self.design_ids, n=3, cutoff=0.5)
        return TableKeyError(
            f"no design {design_id!r} in this table ({len(self.design_ids)} designs); "
            + (f"closest: {', '.join(close)}" if close else "none is close")
            + f"; fidelities: {', '.join(self.fidelities)}"
        )

    def _filter(self, name: str, value: Any) -> Any:
        field, bound = name, None
        if name.endswith(("_min", "_max")) and name[:-4] in DESCRIBE_KEYS:
            field, bound = name[:-4], name[-3:]
        if field not in DESCRIBE_KEYS:
            raise TableKeyError(
                f"no describe() field {field!r} to filter on; accepted: "
                f"{', '.join(DESCRIBE_KEYS)} (with _min/_max for ranges)"
            )
        if bound == "min":
            return lambda info: _num(info.get(field)) is not None and info[field] >= value
        if bound == "max":
            return lambda info: _num(info.get(field)) is not None and info[field] <= value
        if isinstance(value, Collection) and not isinstance(value, str | bytes):
            # A list-valued field (K) compares whole; a scalar one keeps any listed value.
            return lambda info: (
                info.get(field) == list(value)
                if isinstance(info.get(field), list)
                else info.get(field) in value
            )
        return lambda info: info.get(field) == value

    def _entries(
        self,
        fidelity: str | None,
        dataset: str | None,
        epoch: int | None,
        filters: Mapping[str, Any],
    ) -> list[Entry]:
        """The mean answers of the slice's designs that match and have an ok seed."""
        fidelity, dataset = self.resolve(fidelity, dataset)
        ids = self.designs(fidelity=fidelity, dataset=dataset, **filters)
        return [
            self.query(d, fidelity=fidelity, dataset=dataset, epoch=epoch)
            for d in ids
            if self._cells[(d, fidelity, dataset)].ok.any()
        ]


def _only(what: str, options: Sequence[str]) -> str:
    if len(options) != 1:
        raise ValueError(f"pass {what}= (the table has {', '.join(map(repr, options)) or 'none'})")
    return options[0]


def _index(frame: pd.DataFrame) -> dict[tuple[str, str, str], _Cell]:
    """(design_id, fidelity, dataset) -> _Cell; the describe() info from the first seed."""
    info_cols = [c for c in DESCRIBE_KEYS if c in frame.columns]
    cols = ["design_id", "fidelity", "dataset", "seed", "status", "curve", *_FINAL, *info_cols]
    data = {c: frame[c].tolist() if c in frame.columns else [None] * len(frame) for c in cols}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for i in range(len(frame)):
        row = {c: data[c][i] for c in cols}
        row["curve"] = _curve_list(row["curve"])
        groups.setdefault(
            (str(row["design_id"]), str(row["fidelity"]), str(row["dataset"])), []
        ).append(row)
    return {
        key: _Cell(rows, MappingProxyType({c: _plain(rows[0][c]) for c in info_cols}))
        for key, rows in groups.items()
    }


def _entry(
    cell: _Cell,
    key: tuple[str, str, str],
    rows: np.ndarray,
    epoch: int | None,
    curve: Curve | None,
    *,
    single: bool,
) -> Entry:
    length = int(cell.length[rows].max(initial=0))
    if epoch is not None and not (isinstance(epoch, int | np.integer) and 1 <= epoch <= length):
        raise TableKeyError(
            f"{key[0]} at {key[1]}/{key[2]} has no epoch {epoch!r}; epochs: "
            + (f"1..{length}" if length else "none (no curve)")
        )
    at = (epoch or length) - 1  # curve column answered; -1 when there is no curve
    last = cell.length[rows] - 1 if epoch is None else np.full(len(rows), at)
    ok_at = last >= 0

    def pick(arr: np.ndarray) -> np.ndarray:
        return arr[rows[ok_at], last[ok_at]] if arr.shape[1] else np.empty(0)

    vals: dict[str, tuple[float | None, float | None]] = {
        "train_acc": _mean_std(pick(cell.curve["train_acc"])),
        "train_loss": _mean_std(pick(cell.curve["train_loss"])),
        "train_seconds": _mean_std(pick(cell.cum_seconds)),
    }
    final = epoch is None or epoch == length
    vals["val_acc"] = _mean_std(
        cell.final["val_acc"][rows] if epoch is None else pick(cell.curve["val_acc"])
    )
    vals["test_acc"] = _mean_std(cell.final["test_acc"][rows]) if final else (None, None)
    if single:
        vals = {k: (v[0], None) for k, v in vals.items()}
    return Entry(
        design_id=key[0], fidelity=key[1], dataset=key[2],
        seeds=tuple(cell.seeds[i] for i in rows), epoch=(epoch or length) or None,
        status=cell.status[rows[0]] if single else ("ok" if len(rows) else "failed"),
        **{k: v[0] for k, v in vals.items()}, **{f"{k}_std": v[1] for k, v in vals.items()},
        wall_s=_mean_std(cell.final["wall_s"][rows])[0],
        latency_b1_ms=_mean_std(cell.final["latency_b1_ms"][rows])[0],
        latency_b64_ms=_mean_std(cell.final["latency_b64_ms"][rows])[0],
        n_failed=0 if single else int((~cell.ok).sum()), info=cell.info,
        curve=curve,
    )  # fmt: skip


def _curve(cell: _Cell, rows: np.ndarray) -> Curve | None:
    length = int(cell.length[rows].max(initial=0))
    if not length:
        return None
    if len(rows) == 1:
        arrays = {k: cell.curve[k][rows[0], :length] for k in CURVE_METRICS}
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch no seed reached: NaN
            arrays = {
                k: _frozen(np.nanmean(cell.curve[k][rows, :length], axis=0)) for k in CURVE_METRICS
            }
    epochs = np.arange(1, length + 1)
    epochs.setflags(write=False)
    return Curve(epoch=epochs, **arrays)


def _mean_std(x: np.ndarray) -> tuple[float | None, float | None]:
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None, None
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else None)


def _sign(mode: str) -> int:
    if mode not in ("max", "min"):
        raise ValueError(f"mode {mode!r}: accepted 'max' or 'min'")
    return 1 if mode == "min" else -1  # multiplies values so that smaller is better


def _frozen(values: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.array(values, dtype=float)
    if shape is not None:
        arr = arr.reshape(shape)
    arr.setflags(write=False)
    return arr


def _float(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def _floats(values: list[Any]) -> list[float]:
    try:
        return np.array(values, dtype=float).tolist()  # None -> NaN; fast for plain numbers
    except (TypeError, ValueError):
        return [_float(v) for v in values]


def _num(v: Any) -> float | None:
    """A finite number, else None (None, NaN, text)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _plain(v: Any) -> Any:
    """A describe() value as plain Python (NaN -> None, numpy scalars -> Python)."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _curve_list(v: Any) -> list[dict[str, Any]]:
    """A record's curve as a list of dicts, from a list, a NumPy array (parquet) or nothing."""
    if isinstance(v, list | tuple | np.ndarray):
        return [dict(p) for p in v if isinstance(p, Mapping)]
    return []
