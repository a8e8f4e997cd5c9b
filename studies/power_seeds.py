"""``--seeds-for-power``: run the seeds the power analysis says resolve a preset's claims.

The number is fixed before anything runs, from docs/reproduction/power.json (written by
``python -m analysis.claims.reproduction table docs/reproduction --update docs/reproduction.md``
from the committed records: analysis.claims.power). A fixed n with one look at the data keeps the
verdicts' error rates those of a single test; re-testing after every seed and stopping when
a verdict resolves would not (analysis/claims/power.py says why this and not alpha spending).
The sweep then runs seeds 0..n-1 and, as always, skips the seeds already recorded.

Example:
    >>> seeds, note = power_seeds("fig3", "cpu")  # doctest: +SKIP
    >>> seeds[-1] + 1, note  # doctest: +SKIP
    (19, 'seeds 0-18: ...')
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluators.fidelity import SUPERSEDED

PLAN = Path(__file__).resolve().parent.parent / "docs" / "reproduction" / "power.json"


def power_seeds(preset: str | None, fidelity: str, path: Path = PLAN) -> tuple[
        tuple[int, ...], str]:
    """(seeds 0..n-1, a one-line note) for ``preset`` at ``fidelity``.

    Raises:
        ValueError: one line: no preset, no plan file, no entry for this preset and rung
            (naming the ones there are), or no claim of it resolving within the cap.
    """
    if preset is None:
        raise ValueError("--seeds-for-power needs --preset (the power analysis is per "
                         "preset)")
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--seeds-for-power: cannot read {path}: {exc}") from None
    rungs = plan["sweeps"].get(preset, {})
    older = next((old for old, new in SUPERSEDED.items() if new == fidelity), None)
    bound = ""
    if fidelity not in rungs and older in rungs:
        # A v2 rung trains what the rung it supersedes trains and scores on more images, so
        # its seed variance is expected to be at most the old rung's (the test subset's share
        # of it shrinks): the old rung's n should suffice, until its own records measure it.
        bound = (f"; from {older}'s records, an expected upper bound for {fidelity} "
                 "(more test images)")
        fidelity = older
    if fidelity not in rungs:
        have = ", ".join(f"{p} at {'/'.join(sorted(r))}" for p, r in sorted(
            plan["sweeps"].items()))
        raise ValueError(f"--seeds-for-power: no power analysis for preset {preset} at "
                         f"fidelity {fidelity}; accepted: {have}")
    entry = rungs[fidelity]
    far = ", ".join(entry["out_of_reach"]) or "none"
    if entry["seeds"] is None:
        raise ValueError(f"--seeds-for-power: no claim of preset {preset} resolves within "
                         f"{plan['cap']} seeds per design at fidelity {fidelity} "
                         f"(out of reach: {far})")
    n = int(entry["seeds"])
    claims = ", ".join(f"{c} {k if k <= plan['cap'] else '>' + str(plan['cap'])}"
                       for c, k in sorted(entry["claims"].items()))
    note = (f"seeds 0-{n - 1}: {n} per design resolve each claim that resolves within "
            f"{plan['cap']}, at power {plan['power']:g} (per claim: {claims}; out of reach: {far}; "
            f"variance from {entry['variance_from']}; {entry['seeds_now']} per design "
            f"recorded in the committed export{bound}); a fixed n, one look ({path.name})")
    return tuple(range(n)), note
