"""The power table of docs/reproduction.md: the seeds and hours that resolve each claim.

Per export (one sweep, one family) and claim tested over seeds: the seeds per design that
decide a true effect of the smallest size of interest and that call a zero effect
equivalent (analysis.claims.power), and the trials and hours they add at the export's rung (the
cost model with the committed calibration, rescaled to the export's own trials). An export
with one seed has no seed variance: its claims take the variance of the same sweep at
`cpu`. The presets never run here (PILOTS) are planned at the rung they would run at, with
a pooled within-design seed sd of records like theirs at that rung, simulated over
PILOT_SEEDS seeds: the plain8 ones at `cpu` take table 1.1's (204 plain8 records at `cpu`,
one training code), table3 (res20) at `cpu-v2` the res20 records of the exports at
`cpu-v2`, pooled within design and training code.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims import power

#: preset -> the rung it would run at (the plain8 ones at `cpu`, whose variance table 1.1
#: measured; the res-net ones at `cpu-v2`, where the 20-layer nets train)
PILOTS = {"fig3q": "cpu", "table5": "cpu", "table3": "cpu-v2", "table6": "cpu-v2"}
PILOT_SEEDS = 48
RELEASE = Path(__file__).resolve().parents[2] / "releases" / "igcbench-1.1.parquet"


def pooled_sd(df: pd.DataFrame, metric: str = "test_acc") -> float:
    """The pooled within-design sd (ddof 1) of ``metric`` over designs with >= 2 seeds."""
    ok = df[df["status"].eq("ok")]
    g = ok.groupby("design_id")[metric]
    var, dof = g.var(ddof=1), g.count() - 1
    keep = dof > 0
    return float(np.sqrt((var[keep] * dof[keep]).sum() / dof[keep].sum()))


def pilot_frame(design_ids: tuple[str, ...], sd: float, seeds: int = PILOT_SEEDS,
                rng_seed: int = 0) -> pd.DataFrame:
    """Records of the designs with no effect and Gaussian seed noise of ``sd`` (each design
    its own seed numbers, so the contrasts are not paired: the variance measured is the
    unpaired one, which pairing then reduces by contrasts.SEED_SHARE)."""
    import search_space as ss
    from analysis.load import frame_from_records

    rng = np.random.default_rng(rng_seed)
    rows = []
    for j, d in enumerate(design_ids):
        info = ss.describe(ss.parse(d), num_classes=10)
        for s in range(seeds):
            a = float(0.5 + rng.normal(0.0, sd))
            rows.append({**info, "design_id": d, "fidelity": "cpu", "dataset": "cifar10",
                         "seed": j * 1000 + s, "status": "ok", "val_acc": a, "test_acc": a})
    return frame_from_records(rows)


def _exports(export_dir: Path) -> dict[str, pd.DataFrame]:
    from analysis.table.release import read_records

    return {csv.stem: read_records(csv) for csv in sorted(export_dir.glob("*.csv"))}


def _seeds(df: pd.DataFrame) -> int:
    return int(df[df["status"].eq("ok")].groupby("design_id")["seed"].nunique().min())


def rows(export_dir: str | Path) -> list[tuple[power.Need, list[str], dict, pd.DataFrame, int]]:
    """(need, design ids, fidelity config, records for the cost model, seeds there now)."""
    from analysis.claims.check import check_claims
    from studies.presets import get_preset

    exports = _exports(Path(export_dir))
    verdicts = {name: check_claims(df) for name, df in exports.items() if _seeds(df) >= 2}
    out = []
    for name, df in exports.items():
        ok = df[df["status"].eq("ok")]
        fid = str(ok["fidelity"].iloc[0])
        base = name if name in verdicts else name.replace(f"-{fid}-", "-cpu-")
        if base not in verdicts:
            continue
        source = "" if base == name else f"{base}'s {_seeds(exports[base])} seeds"
        ids = sorted(ok["design_id"].unique())
        for need in power.needs(name, verdicts[base], source=source):
            out.append((need, ids, dict(ok["fidelity_config"].iloc[0]), ok, _seeds(df)))
    for name, rung in PILOTS.items():
        if any(n.startswith(f"{name}-") for n in exports):
            continue
        ids = list(get_preset(name).design_ids)
        at = [df[df["status"].eq("ok")] for df in exports.values()
              if (df["fidelity"] == rung).all()]
        sd, source = pilot_sd(ids, rung, at)
        if not math.isfinite(sd):
            continue
        records = pd.concat(at, ignore_index=True)
        pilot = check_claims(pilot_frame(tuple(ids), sd))
        for need in power.needs(f"{name} (not run)", pilot, source=source):
            # the arg-max's spread depends on the true curve, which a pilot of no effect
            # does not have: its seeds are the run fig3 sweeps' (above)
            if need.claim != "fig3_best_not_widest":
                config = dict(records["fidelity_config"].iloc[0])
                out.append((replace(need, effect=math.nan), ids, config, records, 0))
    return out


def pilot_sd(design_ids: list[str], rung: str, records: list[pd.DataFrame]) -> tuple[
        float, str]:
    """The seed sd a preset never run is planned with at ``rung``, and where it comes from:
    at `cpu` table 1.1's (plain8); elsewhere the pooled within-design sd of the exports'
    records at the rung of the preset's net and depth, one group per design and training
    code (a design trained by two codes is two designs here). NaN when none has 2 seeds."""
    from analysis.claims.code_groups import CODE_COLUMN, with_training_code

    if not records:
        return math.nan, f"no records at {rung}"
    if rung == "cpu" and RELEASE.is_file():
        sd = pooled_sd(pd.read_parquet(RELEASE))
        return sd, f"table 1.1's seed sd {sd:.4f}"
    df = with_training_code(pd.concat(records, ignore_index=True))
    nets = sorted({d.split("-", 1)[0] for d in design_ids})  # net and depth: res20
    df = df[df["design_id"].str.split("-", n=1).str[0].isin(nets)]
    if df.empty:
        return math.nan, f"no records of {'/'.join(nets)} at {rung}"
    sd = pooled_sd(df.assign(design_id=df["design_id"] + " " + df[CODE_COLUMN]))
    return sd, f"the {len(df)} {'/'.join(nets)} records' pooled seed sd {sd:.4f} at {rung}"


def _n(n: int) -> str:
    return f"> {power.SEARCH}" if n > power.SEARCH else str(n)


def table(export_dir: str | Path) -> str:
    """The markdown power table (docs/reproduction.md's ``power`` block)."""
    from analysis.claims.texts import CLAIMS

    lines = ["| sweep | claim | effect now | se (seeds per design) | variance from | seeds to "
             "decide / to find no effect | seeds to resolve | trials to add | trial-hours | "
             "hours, 2 at a time |",
             "| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for need, ids, config, records, now in rows(export_dir):
        n = need.resolve
        cost = _cost(need, ids, config, records, now)
        trials, th, wh = ("", "", "") if cost is None else (
            str(cost[0]), f"{cost[1]:.1f}", f"{cost[2]:.1f}")
        effect = "" if not math.isfinite(need.effect) else f"{need.effect:.3g}"
        lines.append(
            f"| {need.sweep} | {CLAIMS[need.claim].statement} | {effect} | "
            f"{need.se:.3g} ({need.seeds}) | {need.source} | {_n(need.decide)} / "
            f"{_n(need.within)} | {_n(n)} | {trials} | {th} | {wh} |")
    return "\n".join(lines)


def _cost(need: power.Need, ids: list[str], config: dict, records: pd.DataFrame,
          now: int) -> tuple[int, float, float] | None:
    """(trials to add, trial-hours, hours 2 at a time) of resolving ``need``; None beyond
    power.SEARCH seeds."""
    if need.resolve > power.SEARCH:
        return None
    extra = max(0, need.resolve - now)
    t_h, w_h = power.hours(ids, config, records, extra)
    return extra * len(ids), t_h, w_h


def statements(export_dir: str | Path) -> dict[tuple[str, str], str]:
    """(sweep, claim) -> what resolving it takes, in words: ``19 seeds per design, ~1.7
    hours at cpu on this machine (...)``; of a claim tested twice in one sweep (Figure 2's
    panels), the larger."""
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for need, ids, config, records, now in rows(export_dir):
        key, rung = (need.sweep, need.claim), str(config["name"])
        if key in out and out[key][0] >= need.resolve:
            continue
        cost = _cost(need, ids, config, records, now)
        if cost is None:
            text = f"more than {power.SEARCH} seeds per design at {rung}: out of reach"
        else:
            text = (f"{need.resolve} seeds per design, ~{cost[2]:.1f} hours at {rung} on this "
                    f"machine ({cost[0]} more trials, 2 at a time)")
        out[key] = (need.resolve, f"{text}; variance: {need.source}")
    return {k: v for k, (_n, v) in out.items()}


def plan(export_dir: str | Path) -> dict:
    """The seeds per design each preset needs at each rung (docs/reproduction/power.json,
    read by ``studies/run.py --seeds-for-power``): the largest number that resolves a claim
    within power.CAP, the claims beyond it listed apart."""
    sweeps: dict[str, dict] = {}
    for need, _ids, config, _records, now in rows(export_dir):
        preset = need.sweep.split(" ")[0].split("-")[0]
        entry = sweeps.setdefault(preset, {}).setdefault(str(config["name"]), {
            "seeds_now": now, "variance_from": need.source, "claims": {}})
        entry["claims"][need.claim] = max(entry["claims"].get(need.claim, 0), need.resolve)
    for rungs in sweeps.values():
        for entry in rungs.values():
            within = [n for n in entry["claims"].values() if n <= power.CAP]
            entry["seeds"] = max(within) if within else None
            entry["out_of_reach"] = sorted(c for c, n in entry["claims"].items()
                                           if n > power.CAP)
    return {"cap": power.CAP, "power": power.POWER, "alpha": power.ALPHA,
            "design": "fixed n from the power analysis, one look (analysis/claims/power.py)",
            "sweeps": sweeps}
