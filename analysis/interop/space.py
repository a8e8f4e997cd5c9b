"""A table's designs as factors, and its records as a dense [design, seed, epoch] array.

What the interop formats share (``analysis.interop.synetune``, ``analysis.interop.configspace``):

- **Factors**, not ids. A design is :class:`search_space.Design`; the factors are its fields
  that vary across the table: the first-stage width ``width``, ``L`` (group convolutions per
  block), ``k1..kLmax`` (the branch size K_l of convolution l at the first stage, as the
  records' ``K`` resolves it; 0 where l > L: no such convolution) and ``branching``
  (``size`` for integer K entries, ``count`` for the ``gN`` form: N branches, so a wider
  stage keeps N branches instead of their size), and any other Design field that varies
  (``net``, ``depth``, ``spatial``, ``expansion``, ``nonlinear``, ``stem``: 0 when it is
  the width). A factor with
  one value in the table is left out of the space and kept in :attr:`DesignSpace.fixed`.
- **Invalid configurations.** The factor space is a product; the table is a sample of it
  (68 designs in release 1.1). A configuration that is not a design of the table is
  answered by its **nearest design** (:func:`nearest_index`: each numeric factor scaled to
  the table's range, ``width`` on a log scale, a differing categorical counts as the whole
  range; Euclidean; ties to the lower index, i.e. the sorted id). Every answer carries
  ``design_index`` (and the seed it read), so what was evaluated is never hidden. This is
  the mapping the project's own ``tpe-struct`` replay uses (docs/benchmark.md).
- **Seeds and fidelity.** Designs with every seed of the table as an ok record with a full
  curve; a design lacking one is left out (:attr:`DesignSpace.left_out` names them). The
  fidelity axis is the curve's epoch 1..E of one (fidelity, dataset) of the table.

Example:
    >>> from pathlib import Path
    >>> s = design_space(Path(__file__).parents[2] / "releases" / "igcbench-1.1.json")
    >>> len(s.design_ids), s.seeds, s.epochs.tolist(), list(s.factors.columns)
    (68, (0, 1, 2), [1, 2], ['width', 'L', 'k2', 'k3', 'k4', 'k5', 'k6', 'branching'])
    >>> s.factors.iloc[s.design_ids.index("plain8-c160-k1.g8")].to_dict()
    {'width': 160, 'L': 2, 'k2': 20, 'k3': 0, 'k4': 0, 'k5': 0, 'k6': 0, 'branching': 'count'}
    >>> s.design_ids[nearest_index(s.factors, {"width": 150, "L": 2, "k2": 21})]
    'plain8-c160-k1.g8'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import search_space as ss
from analysis.table.release import read_release

# Per (design, seed, epoch). test_acc is measured once, after training: NaN before the last
# epoch. train_seconds is cumulative (the simulators' elapsed time). design_index and seed
# say which record answered (a configuration off the table is answered by its nearest design).
OBJECTIVES = (
    "val_acc", "test_acc", "train_seconds", "params", "flops", "latency_b1_ms",
    "latency_b64_ms", "design_index", "seed",
)  # fmt: skip
LOG_FACTORS = ("width",)  # and the k_l: scaled on a log axis (widths 24..310 in release 1.1)
_FIELDS = ("net", "depth", "spatial", "expansion", "nonlinear", "stem")  # other Design fields


@dataclass(frozen=True, eq=False)
class DesignSpace:
    """One (fidelity, dataset) of a table, as factors and a dense array of objectives.

    Attributes:
        design_ids: sorted; row i of ``factors`` and of ``values`` is design_ids[i].
        factors: one row per design, one column per varying factor (ints, or str for a
            categorical).
        fixed: the factors with one value in the table (name -> value).
        seeds: the table's seeds (axis 1 of ``values``).
        epochs: 1..E (axis 2).
        values: float array [design, seed, epoch, objective] of :data:`OBJECTIVES`.
        left_out: designs without every seed as an ok record with a full curve.
    """

    design_ids: tuple[str, ...]
    factors: pd.DataFrame
    fixed: Mapping[str, Any]
    seeds: tuple[int, ...]
    epochs: np.ndarray
    values: np.ndarray
    fidelity: str
    dataset: str
    version: str
    left_out: tuple[str, ...] = ()

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c for c in self.factors.columns if _categorical(self.factors[c]))

    def objective(self, name: str) -> np.ndarray:
        """The [design, seed, epoch] array of one objective."""
        return self.values[..., OBJECTIVES.index(name)]


def design_space(
    path: str | Path, *, fidelity: str | None = None, dataset: str | None = None
) -> DesignSpace:
    """Read a release (manifest, directory or parquet; sha256 verified) as a DesignSpace.

    Raises:
        FileNotFoundError, ValueError: no release there, or a table the formats cannot hold
            (several fidelities or datasets and none chosen, a design with several stage K
            tuples, two designs with the same factors, no design with every seed).
    """
    release = read_release(path)
    df = release.records
    fidelity = _pick("fidelity", fidelity, sorted(df["fidelity"].unique()))
    dataset = _pick("dataset", dataset, sorted(df["dataset"].unique()))
    df = df[(df["fidelity"] == fidelity) & (df["dataset"] == dataset)]
    seeds = tuple(sorted(int(s) for s in df["seed"].unique()))
    length = df["curve"].map(lambda c: len(c) if isinstance(c, list) else 0)
    epochs = int(length.max())
    full = df[(df["status"] == "ok") & (length == epochs)]
    counts = full.groupby("design_id")["seed"].nunique()
    ids = tuple(sorted(counts.index[counts == len(seeds)]))
    if not ids:
        raise ValueError(f"{path}: no design has all of seeds {seeds} with {epochs} epochs")
    left_out = tuple(sorted(set(df["design_id"]) - set(ids)))
    factors, fixed = design_factors(ids, full.groupby("design_id")["K"].first())
    rows = {(r["design_id"], int(r["seed"])): r for r in full.to_dict("records")}
    values = np.stack([[_objectives(rows[(d, s)], i, s, epochs) for s in seeds]
                       for i, d in enumerate(ids)])  # fmt: skip
    return DesignSpace(
        design_ids=ids, factors=factors, fixed=fixed, seeds=seeds,
        epochs=np.arange(1, epochs + 1), values=values, fidelity=fidelity, dataset=dataset,
        version=str(release.manifest.get("version")), left_out=left_out,
    )  # fmt: skip


def design_factors(
    ids: tuple[str, ...], resolved_k: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The factors of designs (one row each, in ``ids`` order) and the constant ones.

    ``resolved_k[id]`` is the record's ``K`` (per stage, ``gN`` resolved to a branch size).
    """
    rows = []
    for design_id in ids:
        d = ss.parse(design_id)
        if len(d.K) > 1:
            raise ValueError(f"{design_id}: a K per stage is not supported by the export")
        sizes = [int(k) for k in resolved_k[design_id][0]]
        forms = ["count" if isinstance(e, str) else "size" for e in d.K[0][1:]] or ["size"]
        row = {f: getattr(d, f) for f in _FIELDS}
        row.update(width=d.width, L=d.L)
        row.update({f"k{i + 1}": k for i, k in enumerate(sizes)})
        # one word when every convolution has the same form; else one per convolution
        row["branching"] = forms[0] if len(set(forms)) == 1 else ".".join(forms)
        rows.append(row)
    frame = pd.DataFrame(rows).fillna(0)
    order = ["width", "L"] + sorted((c for c in frame if c.startswith("k")), key=_k_order)
    order += ["branching"] + list(_FIELDS)
    frame = frame[order]
    fixed = {c: _plain(frame[c].iloc[0]) for c in frame if frame[c].nunique() == 1}
    frame = frame.drop(columns=list(fixed))
    for c in frame:
        kind = object if frame[c].map(lambda v: isinstance(v, (str, bool))).any() else "int64"
        frame[c] = frame[c].astype(str) if kind is object else frame[c].astype("int64")
        frame[c] = frame[c].astype(kind)
    dup = frame.duplicated(keep=False)
    if dup.any():
        same = [ids[i] for i in np.flatnonzero(dup)]
        raise ValueError(f"designs {', '.join(same[:4])} have the same factors")
    return frame.reset_index(drop=True), fixed


def nearest_index(factors: pd.DataFrame, config: Mapping[str, Any]) -> int:
    """Row of ``factors`` nearest to ``config``; a configuration equal to a row gives that row.

    Distance: Euclidean over the factors, each scaled to the table's range: ``width`` and
    the branch sizes ``k_l`` on a log axis (they multiply: groups = width / K), ``L`` and the
    other integers linearly; a differing categorical adds 1. ``k_l`` is absent where
    ``l > L`` (a 0 in ``factors``; in ``config`` whatever its value, as a conditional space
    leaves it out and a flat one, syne-tune's, still samples it); one absent and one present
    adds 1. Ties go to the lower row (the sorted id).
    """
    length = int(config["L"]) if "L" in config and "L" in factors else None
    dist = np.zeros(len(factors))
    for c in factors.columns:
        col = factors[c]
        if _categorical(col):
            dist += (col.to_numpy() != str(config.get(c, ""))).astype(float)
            continue
        x = col.to_numpy(float)
        v = float(config.get(c, 0))
        if is_k(c):
            if length is not None and int(c[1:]) > length:
                v = 0.0
            dist += _log_gap(x, v)
            continue
        if c in LOG_FACTORS:
            x, v = np.log(x), np.log(max(v, 1.0))
        span = x.max() - x.min()
        dist += ((x - v) / (span if span > 0 else 1.0)) ** 2
    return int(np.argmin(dist))


def _log_gap(x: np.ndarray, v: float) -> np.ndarray:
    """Squared scaled log distance of branch sizes, 0 meaning absent: 1 between an absent
    and a present one, 0 between two absent ones."""
    present = x > 0
    logs = np.log(np.where(present, x, 1.0))
    span = np.ptp(logs[present]) if present.any() else 0.0
    gap = np.where(present, (logs - np.log(max(v, 1.0))) / (span if span > 0 else 1.0), 0.0)
    return np.where(present == (v > 0), gap**2, 1.0)


def _objectives(row: Mapping[str, Any], index: int, seed: int, epochs: int) -> np.ndarray:
    curve = row["curve"]
    out = np.full((epochs, len(OBJECTIVES)), np.nan)
    out[:, 0] = [p["val_acc"] for p in curve]
    out[-1, 1] = row["test_acc"]
    out[:, 2] = np.cumsum([p["seconds"] for p in curve])
    for j, name in enumerate(OBJECTIVES[3:7], start=3):
        out[:, j] = row[name]
    out[:, 7], out[:, 8] = index, seed
    return out


def _pick(what: str, value: str | None, options: list[str]) -> str:
    if value is None and len(options) == 1:
        return options[0]
    if value not in options:
        raise ValueError(f"{what} {value!r}: the table has {', '.join(options)}; pick one")
    return value


def _categorical(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col)


def is_k(name: str) -> bool:
    """k_l: the branch size of convolution l (0 where the design has no convolution l)."""
    return name[:1] == "k" and name[1:].isdigit()


def _k_order(name: str) -> int:
    return int(name[1:])


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
