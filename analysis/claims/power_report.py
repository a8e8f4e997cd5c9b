"""The power table of docs/reproduction.md: the seeds and hours that resolve each claim.

Per export (one sweep, one family) and claim tested over seeds: the seeds per design that
decide a true effect of the smallest size of interest and that call a zero effect
equivalent (analysis.claims.power), and the trials and hours they add at the export's rung (the
cost model with the committed calibration, rescaled to the export's own trials). An export
with one seed has no seed variance: its claims take the variance of the same sweep at
`cpu`. The presets never run here (PILOTS) take table 1.1's within-design seed sd at `cpu`
(the only variance measured on designs like theirs), simulated over PILOT_SEEDS seeds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.claims import power

PILOTS = ("fig3q", "table5", "table3", "table6")
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
    cpu = [df for df in exports.values() if (df["fidelity"] == "cpu").all()]
    if not cpu or not RELEASE.is_file():
        return out
    records = pd.concat(cpu, ignore_index=True)
    records = records[records["status"].eq("ok")]
    config = dict(records["fidelity_config"].iloc[0])
    sd = pooled_sd(pd.read_parquet(RELEASE))
    for name in PILOTS:
        if any(n.startswith(f"{name}-cpu-") for n in exports):
            continue
        ids = list(get_preset(name).design_ids)
        pilot = check_claims(pilot_frame(tuple(ids), sd))
        source = f"table 1.1's seed sd {sd:.4f}"
        for need in power.needs(f"{name} (not run)", pilot, source=source):
            # the arg-max's spread depends on the true curve, which a pilot of no effect
            # does not have: its seeds are the run fig3 sweeps' (above)
            if need.claim != "fig3_best_not_widest":
                out.append((replace(need, effect=math.nan), ids, config, records, 0))
    return out


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
        if n > power.SEARCH:
            trials, th, wh = "", "", ""
        else:
            extra = max(0, n - now)
            t_h, w_h = power.hours(ids, config, records, extra)
            trials, th, wh = str(extra * len(ids)), f"{t_h:.1f}", f"{w_h:.1f}"
        effect = "" if not math.isfinite(need.effect) else f"{need.effect:.3g}"
        lines.append(
            f"| {need.sweep} | {CLAIMS[need.claim].statement} | {effect} | "
            f"{need.se:.3g} ({need.seeds}) | {need.source} | {_n(need.decide)} / "
            f"{_n(need.within)} | {_n(n)} | {trials} | {th} | {wh} |")
    return "\n".join(lines)


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
