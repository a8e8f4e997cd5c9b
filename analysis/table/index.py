"""The index of a table: one cell per (design_id, fidelity, dataset) holding its seeds as
arrays, and the typed answers (:class:`Entry`, :class:`Curve`) that the queries of
:class:`analysis.table.benchmark.Benchmark` read from them.

A cell is built once per key: the final values of every seed as an array, and the per-epoch
curves as a [seed, epoch] array padded with NaN (a seed that failed or was stopped early has
a shorter curve). An answer is then a few array reads.

Example:
    >>> import pandas as pd
    >>> rows = [{"design_id": "a", "fidelity": "cpu", "dataset": "cifar10", "seed": s,
    ...          "status": "ok", "val_acc": v, "params": 10,
    ...          "curve": [{"epoch": 1, "val_acc": v / 2, "seconds": 2.0},
    ...                    {"epoch": 2, "val_acc": v, "seconds": 3.0}]}
    ...         for s, v in ((0, 0.5), (1, 0.7))]
    >>> cell = index_records(pd.DataFrame(rows))[("a", "cpu", "cifar10")]
    >>> cell.seeds, cell.curve["val_acc"].tolist(), cell.cum_seconds[0].tolist()
    ((0, 1), [[0.25, 0.5], [0.35, 0.7]], [2.0, 5.0])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import mean_std
from evaluators.record import CURVE_KEYS, MEASURES
from search_space import DESCRIBE_KEYS

CURVE_METRICS = tuple(k for k in CURVE_KEYS if k != "epoch")  # per epoch, in each record
FINAL = MEASURES  # per record


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


@dataclass(frozen=True, eq=False, repr=False)
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

    def __repr__(self) -> str:
        """One line: the key, the seeds, the accuracies and the size (not the curve)."""
        def acc(mean: float | None, std: float | None) -> str:
            if mean is None:
                return "None"
            return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")

        params = f"{self.params:,.0f}" if num(self.params) is not None else "None"
        return (f"Entry({self.design_id} at {self.fidelity}/{self.dataset}, seeds "
                f"{self.seeds}, epoch {self.epoch}, {self.status}: val_acc "
                f"{acc(self.val_acc, self.val_acc_std)}, test_acc "
                f"{acc(self.test_acc, self.test_acc_std)}, params {params})")

    def row(self) -> dict[str, Any]:
        """The answer as one table row: the key, the numbers, the main describe() fields."""
        out: dict[str, Any] = {
            "design_id": self.design_id, "fidelity": self.fidelity, "dataset": self.dataset,
            "seeds": len(self.seeds), "epoch": self.epoch, "status": self.status}
        for name in ROW_METRICS:
            out[name] = getattr(self, name)
        for name in ROW_INFO:
            out[name] = self.info.get(name)
        out["n_failed"] = self.n_failed
        return out

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
_METRICS = frozenset(n for n in _ENTRY_FIELDS if f"{n}_std" in _ENTRY_FIELDS  # the means
                     or n in FINAL)

_ACCURACIES = tuple(k for k in FINAL if k.endswith("_acc"))  # measured at the end of training
#: A row: each final accuracy with its spread, the training seconds, the other finals.
ROW_METRICS = (*(m for k in _ACCURACIES for m in (k, f"{k}_std")), "train_seconds",
               *(k for k in FINAL if k not in _ACCURACIES))
ROW_INFO = ("family", "L", "width", "params", "flops", "complementarity")
REPR_COLUMNS = ("design_id", "seeds", "epoch", "val_acc", "val_acc_std", "test_acc", "params",
                "flops", "L", "width", "train_seconds")  # what a printed list shows


class Entries(list):
    """Answers of many rows (``pareto``): a list of :class:`Entry` with a table view.

    ``.frame`` is a pandas DataFrame, one row per entry (:meth:`Entry.row`); the list
    prints as that table, not as a screen of reprs. Slices stay ``Entries``.
    """

    @property
    def frame(self) -> pd.DataFrame:
        rows = [e.row() for e in self]
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["design_id"])

    def __getitem__(self, index: Any) -> Any:
        got = super().__getitem__(index)
        return Entries(got) if isinstance(index, slice) else got

    def __repr__(self) -> str:
        frame = self.frame
        shown = frame[[c for c in REPR_COLUMNS if c in frame.columns]]
        return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")

    def _repr_html_(self) -> str:  # notebooks
        return self.frame.to_html(index=False)


class DesignIds(list):
    """Design ids (``designs``): a list of str, with ``.frame``, their describe() fields."""

    def __init__(self, ids: Any = (), infos: Mapping[str, Mapping[str, Any]] | None = None):
        super().__init__(ids)
        self._infos = infos or {}

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([dict(self._infos.get(d, {"id": d})) for d in self])


class Cell:
    """Every seed of one (design_id, fidelity, dataset), as arrays indexed [seed row, epoch]."""

    __slots__ = ("seeds", "row", "status", "ok", "final", "curve", "cum_seconds", "length",
                 "info")  # fmt: skip

    def __init__(self, rows: list[dict[str, Any]], info: dict[str, Any]):
        rows = sorted(rows, key=lambda r: r["seed"])
        self.seeds = tuple(int(r["seed"]) for r in rows)
        self.row = {s: i for i, s in enumerate(self.seeds)}
        self.status = tuple(str(r["status"]) for r in rows)
        self.ok = np.array([s == "ok" for s in self.status])
        self.final = {k: _frozen([_float(r.get(k)) for r in rows]) for k in FINAL}
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


def index_records(frame: pd.DataFrame) -> dict[tuple[str, str, str], Cell]:
    """(design_id, fidelity, dataset) -> Cell; the describe() info from the first seed."""
    info_cols = [c for c in DESCRIBE_KEYS if c in frame.columns]
    cols = ["design_id", "fidelity", "dataset", "seed", "status", "curve", *FINAL, *info_cols]
    data = {c: frame[c].tolist() if c in frame.columns else [None] * len(frame) for c in cols}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for i in range(len(frame)):
        row = {c: data[c][i] for c in cols}
        row["curve"] = _curve_list(row["curve"])
        groups.setdefault(
            (str(row["design_id"]), str(row["fidelity"]), str(row["dataset"])), []
        ).append(row)
    return {
        key: Cell(rows, MappingProxyType({c: _plain(rows[0][c]) for c in info_cols}))
        for key, rows in groups.items()
    }


def answer(
    cell: Cell,
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
        "train_acc": mean_std(pick(cell.curve["train_acc"])),
        "train_loss": mean_std(pick(cell.curve["train_loss"])),
        "train_seconds": mean_std(pick(cell.cum_seconds)),
    }
    final = epoch is None or epoch == length
    vals["val_acc"] = mean_std(
        cell.final["val_acc"][rows] if epoch is None else pick(cell.curve["val_acc"])
    )
    vals["test_acc"] = mean_std(cell.final["test_acc"][rows]) if final else (None, None)
    if single:
        vals = {k: (v[0], None) for k, v in vals.items()}
    return Entry(
        design_id=key[0], fidelity=key[1], dataset=key[2],
        seeds=tuple(cell.seeds[i] for i in rows), epoch=(epoch or length) or None,
        status=cell.status[rows[0]] if single else ("ok" if len(rows) else "failed"),
        **{k: v[0] for k, v in vals.items()}, **{f"{k}_std": v[1] for k, v in vals.items()},
        wall_s=mean_std(cell.final["wall_s"][rows])[0],
        latency_b1_ms=mean_std(cell.final["latency_b1_ms"][rows])[0],
        latency_b64_ms=mean_std(cell.final["latency_b64_ms"][rows])[0],
        n_failed=0 if single else int((~cell.ok).sum()), info=cell.info,
        curve=curve,
    )  # fmt: skip


def answer_curve(cell: Cell, rows: np.ndarray) -> Curve | None:
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


def num(v: Any) -> float | None:
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
