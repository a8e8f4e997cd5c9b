"""A table you query instead of training: one record per (design_id, fidelity, dataset, seed).

As NAS-Bench-201 / NATS-Bench's ``get_more_info(arch, dataset, epochs)``: :meth:`Benchmark.load`
reads a run directory, a records export (parquet or CSV) or a checksummed release
(analysis.table.release) and builds, once, a dict keyed by (design_id, fidelity, dataset) whose
value holds that key's seeds as numpy arrays (final values, and per-epoch curves padded with NaN).
A query is then a dict look-up and a few array reads: microseconds, no pandas.

Example (the committed release: 51 designs at the cpu fidelity, 3 seeds, 2 epochs):
    >>> bench = Benchmark.load(Path(__file__).parents[2] / "releases" / "igcbench-1.0.json")
    >>> bench
    Benchmark(51 designs, 153 records, fidelities=['cpu'], datasets=['cifar10'])
    >>> e = bench.query("plain8-c76-k1.2")                      # mean and std over seeds
    >>> round(e.val_acc, 4), round(e.val_acc_std, 4), e.seeds, round(e.train_seconds), e.params
    (0.3875, 0.0222, (0, 1, 2), 44, 9814.0)
    >>> bench.query("plain8-c76-k1.2", seed=0, epoch=1).val_acc
    0.275
    >>> bench.designs(L=3, family="igcv2", params_max=30_000)[:2]
    ['plain8-c16-k1.16.16', 'plain8-c28-k1.g2.g2']
    >>> bench.best("val_acc", budget=30_000).design_id
    'plain8-c76-k1.2'
    >>> [e.design_id for e in bench.pareto([("val_acc", "max"), ("params", "min")])][:3]
    ['plain8-c76-k1.2', 'plain8-c68-k1.4', 'plain8-c56-k1.g8']
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import frame_from_records, load_results
from analysis.report.pareto import non_dominated
from analysis.table import release
from analysis.table.index import (  # noqa: F401 (Curve, Entry, TableKeyError: the answers' types)
    Curve,
    DesignIds,
    Entries,
    Entry,
    TableKeyError,
    answer,
    answer_curve,
    index_records,
    num,
)
from evaluators.record import records_dir
from search_space import DESCRIBE_KEYS

_CACHE_SIZE = 1 << 16  # answers memoised; cleared when full (a sweep over every epoch of a
# big table would otherwise keep them all)


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
        self._cells = index_records(frame)
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
        if p.is_dir() and records_dir(p).is_dir():
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
            curve = self._curves[(key, seed)] = answer_curve(cell, rows)
        entry = answer(cell, key, rows, epoch, curve, single=seed is not None)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[memo] = entry
        return entry

    def designs(
        self, *, fidelity: str | None = None, dataset: str | None = None, **filters: Any
    ) -> DesignIds:
        """Design ids (sorted) with a record at the slice whose describe() fields match.

        A list of str; its ``.frame`` is a DataFrame of their describe() fields.

        A filter ``field=value`` keeps equal values; ``field=[a, b]`` (a list, tuple or set)
        keeps any of them; ``field_min=x`` / ``field_max=x`` keep x <= field / field <= x.

        """
        fidelity, dataset = self.resolve(fidelity, dataset)
        tests = [self._filter(name, value) for name, value in filters.items()]
        cells = {
            d: cell.info
            for (d, f, ds), cell in self._cells.items()
            if f == fidelity and ds == dataset and all(t(cell.info) for t in tests)
        }
        return DesignIds(sorted(cells), cells)

    def best(
        self,
        metric: str = "val_acc",
        budget: float | str | None = None,
        *,
        fidelity: str | None = None,
        dataset: str | None = None,
        mode: str | None = None,
        cost: str = "params",
        epoch: int | None = None,
        **filters: Any,
    ) -> Entry:
        """The design with the best mean ``metric`` over ok seeds whose ``cost`` <= budget.

        ``budget``: a number, or a string as ``studies/run.py --budget`` takes it (``"40k"``,
        ``"0.65M"``; ``studies.budget.parse_budget``, the one parser of both).
        ``mode`` is 'max' or 'min'; by default 'max' for a metric ending in 'acc', else 'min'.
        Ties go to the lower cost, then the smaller id. ``filters`` as in :meth:`designs`.

        Raises:
            ValueError: a budget that is not a count (one line naming it), or no ok design
                fits the budget (naming the cheapest there is).
        """
        if isinstance(budget, str):
            from studies.budget import parse_budget

            budget = parse_budget(budget)
        mode = mode or ("max" if metric.endswith("acc") else "min")
        sign = _sign(mode)
        entries = self._entries(fidelity, dataset, epoch, filters)
        fits = [
            e
            for e in entries
            if budget is None or ((c := num(e.metric(cost))) is not None and c <= budget)
        ]
        scored = [
            (sign * v, num(e.metric(cost)) or 0.0, e.design_id, e)
            for e in fits
            if (v := num(e.metric(metric))) is not None
        ]
        if not scored:
            costs = [c for e in entries if (c := num(e.metric(cost))) is not None]
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
    ) -> Entries:
        """The designs no other design dominates on ``metrics`` (means over ok seeds).

        Args:
            metrics: (name, 'max' | 'min') pairs, e.g. [('val_acc', 'max'), ('params', 'min')].

        Returns:
            The front, best first by the first metric (then by id). Equal points all stay.
            A list of :class:`Entry` that prints as a table; ``.frame`` is that DataFrame.
        """
        if not metrics:
            raise ValueError("pareto needs at least one (metric, 'max'|'min') pair")
        signs = np.array([_sign(mode) for _, mode in metrics])
        entries = [
            e
            for e in self._entries(fidelity, dataset, epoch, filters)
            if all(num(e.metric(m)) is not None for m, _ in metrics)
        ]
        if not entries:
            return Entries()
        # Minimise sign * value throughout.
        x = np.array([[num(e.metric(m)) for m, _ in metrics] for e in entries]) * signs
        front = [e for e, keep in zip(entries, non_dominated(x), strict=True) if keep]
        return Entries(sorted(front, key=lambda e: (signs[0] * e.metric(metrics[0][0]),
                                                    e.design_id)))

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
            return lambda info: num(info.get(field)) is not None and info[field] >= value
        if bound == "max":
            return lambda info: num(info.get(field)) is not None and info[field] <= value
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


def _sign(mode: str) -> int:
    if mode not in ("max", "min"):
        raise ValueError(f"mode {mode!r}: accepted 'max' or 'min'")
    return 1 if mode == "min" else -1  # multiplies values so that smaller is better
