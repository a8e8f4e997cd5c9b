"""One (fidelity, dataset) of a table as the arrays a replay reads (analysis.replay.simulate).

Example:
    >>> from analysis.table.benchmark import Benchmark
    >>> t = ReplayTable.from_benchmark(
    ...     Benchmark.load(Path(__file__).parents[2] / "releases" / "igcbench-1.0.json"))
    >>> len(t.design_ids), t.epochs, t.design_ids[t.best], float(t.mean_val[t.best])
    (51, 2, 'plain8-c76-k1.2', 0.3875)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path  # noqa: F401 (the example names it)
from types import MappingProxyType

import numpy as np
import pandas as pd

from analysis.table.benchmark import Benchmark


@dataclass(frozen=True, eq=False)
class ReplayTable:
    """One (fidelity, dataset) of a table, as arrays a replay reads.

    Attributes:
        design_ids: the designs with at least one ok seed whose curve has every epoch; grid
            order (the table's sorted ids).
        epochs: epochs of a full training (max_t).
        val, seconds: per design, [seed, epoch] arrays of curve val_acc and epoch seconds.
        seeds: per design, the seeds of those rows.
        mean_val: per design, the mean over seeds of the final curve val_acc.
        params: per design (the second objective of tpe and nsga2).
        best: index of the table's best design (highest mean_val; the first on ties).
        scores: zero-cost scores per design (name -> array aligned with design_ids, the
            mean over initialisation seeds), for the zero-cost searches; see
            :meth:`with_scores`.
    """

    design_ids: tuple[str, ...]
    epochs: int
    val: tuple[np.ndarray, ...]
    seconds: tuple[np.ndarray, ...]
    seeds: tuple[tuple[int, ...], ...]
    mean_val: np.ndarray
    params: np.ndarray
    best: int
    fidelity: str = ""
    dataset: str = ""
    scores: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def seed_noise(self) -> float | None:
        """The median over designs of the seeds' standard deviation of the final val_acc:
        how far apart two runs of one design land. None with a single seed per design.

        A search whose incumbent is within this of the best has found a design the table
        cannot tell from its best (the best is itself one draw of that noise).
        """
        spreads = [float(v[:, -1].std(ddof=1)) for v in self.val if len(v) > 1]
        return float(np.median(spreads)) if spreads else None

    def with_scores(self, scores: pd.DataFrame) -> ReplayTable:
        """This table with zero-cost scores (analysis.proxies.ranks.read_scores: design_id,
        seed, a column per score), averaged over seeds per design.

        Raises:
            ValueError: a design of the table without scores.
        """
        means = scores.groupby("design_id").mean(numeric_only=True).drop(columns="seed",
                                                                            errors="ignore")
        missing = [d for d in self.design_ids if d not in means.index]
        if missing:
            raise ValueError(f"no zero-cost scores for {len(missing)} of the table's designs "
                             f"({', '.join(missing[:3])})")
        rows = means.loc[list(self.design_ids)]
        arrays = {c: rows[c].to_numpy(float) for c in rows.columns}
        return dataclasses.replace(self, scores=MappingProxyType(arrays))

    @classmethod
    def from_benchmark(
        cls, bench: Benchmark, *, fidelity: str | None = None, dataset: str | None = None
    ) -> ReplayTable:
        """Designs with a full curve in at least one ok seed; seeds with a shorter curve (or a
        failed status) are left out, and so are designs with none."""
        fidelity, dataset = bench.resolve(fidelity, dataset)
        ids = bench.designs(fidelity=fidelity, dataset=dataset)
        rows = {
            d: [
                bench.query(d, fidelity=fidelity, dataset=dataset, seed=s)
                for s in bench.query(d, fidelity=fidelity, dataset=dataset).seeds
            ]
            for d in ids
        }
        epochs = max((len(e.curve.epoch) for rs in rows.values() for e in rs if e.curve), default=0)
        full = {
            d: [
                e
                for e in rs
                if e.curve is not None
                and len(e.curve.epoch) == epochs
                and not np.isnan(e.curve.seconds).any()
            ]
            for d, rs in rows.items()
        }
        full = {d: rs for d, rs in full.items() if rs}
        if not full:
            raise ValueError(
                f"no design at {fidelity}/{dataset} has an ok seed with a full "
                "curve; nothing to replay"
            )
        ids = sorted(full)
        val = tuple(np.array([e.curve.val_acc for e in full[d]]) for d in ids)
        mean_val = np.array([v[:, -1].mean() for v in val])
        return cls(
            design_ids=tuple(ids), epochs=epochs, val=val,
            seconds=tuple(np.array([e.curve.seconds for e in full[d]]) for d in ids),
            seeds=tuple(tuple(e.seeds[0] for e in full[d]) for d in ids), mean_val=mean_val,
            params=np.array([float(full[d][0].params or 0.0) for d in ids]),
            best=int(np.argmax(mean_val)), fidelity=fidelity, dataset=dataset,
        )  # fmt: skip
