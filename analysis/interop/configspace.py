"""A table as a ConfigSpace configuration space and an objective function (SMAC, DEHB, ...).

- :func:`configuration_space`: the factors of ``analysis.interop.space`` as a conditional
  space: ``k_l`` (the branch size of convolution l) is active only where ``L >= l``, so an
  inactive one is absent from a configuration instead of a 0; ``width`` and the ``k_l``
  are log-scaled.
- :class:`TableObjective`: ``objective(config, fidelity=None, seed=None)`` -> the table's
  objectives (``analysis.interop.space.OBJECTIVES``) and ``design_id``; a configuration that
  is not a design of the table is answered by its nearest design (``design_id`` says which).
  ``fidelity`` is the epoch (default the last); ``seed`` a table seed, another int is read as
  ``seeds[seed % n]`` (SMAC draws arbitrary ints), ``None`` the mean over the seeds.
  :meth:`TableObjective.smac` is SMAC's target function (``config, seed, budget`` -> cost
  ``1 - val_acc``, budget = epochs), :meth:`TableObjective.smac_mean` the same of the mean
  over seeds.

Example:
    >>> from pathlib import Path
    >>> from analysis.interop.space import design_space
    >>> s = design_space(Path(__file__).parents[2] / "releases" / "igcbench-1.1.json")
    >>> f = TableObjective(s)
    >>> r = f({"width": 160, "L": 2, "k2": 20, "branching": "count"}, fidelity=2, seed=1)
    >>> r["design_id"], round(r["val_acc"], 5), r["params"]
    ('plain8-c160-k1.g8', 0.40375, 37930.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .space import LOG_FACTORS, OBJECTIVES, DesignSpace, is_k, nearest_index


def configuration_space(space: DesignSpace, *, seed: int | None = None) -> Any:
    """A ``ConfigSpace.ConfigurationSpace`` of the factors, bounded by the table's values."""
    from ConfigSpace import Categorical, ConfigurationSpace, GreaterThanCondition, Integer

    cs = ConfigurationSpace(seed=seed)
    hps = {}
    for c in space.factors.columns:
        col = space.factors[c]
        if c in space.categorical:
            hps[c] = Categorical(c, sorted(col.unique()))
            continue
        present = col[col > 0] if is_k(c) else col
        lo, hi = int(present.min()), int(present.max())
        log = c in LOG_FACTORS or is_k(c)
        hps[c] = Integer(c, (lo, hi), log=log) if hi > lo else Categorical(c, [lo])
    cs.add(list(hps.values()))
    for c in space.factors.columns:
        if is_k(c) and "L" in hps and (space.factors[c] == 0).any():
            cs.add(GreaterThanCondition(hps[c], hps["L"], int(c[1:]) - 1))
    return cs


class TableObjective:
    """The table as a function of a configuration (any mapping of factor values)."""

    def __init__(self, space: DesignSpace):
        self.space = space

    def __call__(self, config: Mapping[str, Any], fidelity: int | None = None,
                 seed: int | None = None) -> dict[str, Any]:  # fmt: skip
        s = self.space
        i = nearest_index(s.factors, dict(config))
        epoch = int(s.epochs[-1]) if fidelity is None else int(fidelity)
        if epoch not in s.epochs:
            raise ValueError(f"fidelity {fidelity!r}: the table's epochs are 1..{s.epochs[-1]}")
        rows = s.values[i, :, epoch - 1]
        if seed is None:
            values = rows.mean(axis=0)
            values[OBJECTIVES.index("seed")] = np.nan  # a mean is no seed's
        else:
            j = s.seeds.index(seed) if seed in s.seeds else int(seed) % len(s.seeds)
            values = rows[j]
        out: dict[str, Any] = {k: float(v) for k, v in zip(OBJECTIVES, values, strict=True)}
        out["design_id"] = s.design_ids[i]
        return out

    def smac(self, config: Any, seed: int = 0, budget: float | None = None) -> float:
        """SMAC's target function: the cost ``1 - val_acc`` at epoch ``budget`` (default
        the last) of one seed, SMAC's ``seed`` read as a table seed (``deterministic=False``:
        SMAC evaluates a configuration on several); SMAC minimises."""
        fidelity = None if budget is None else int(round(budget))
        return 1.0 - self(config, fidelity=fidelity, seed=seed)["val_acc"]

    def smac_mean(self, config: Any, seed: int = 0, budget: float | None = None) -> float:
        """:meth:`smac` of the mean over the table's seeds, SMAC's ``seed`` unused (for
        ``deterministic=True``): the value the table ranks designs by."""
        fidelity = None if budget is None else int(round(budget))
        return 1.0 - self(config, fidelity=fidelity, seed=None)["val_acc"]
