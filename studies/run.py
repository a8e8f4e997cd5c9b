"""``python studies/run.py --budget 0.65M``: search the IGCV2 design space under a budget.

``--preset fig3`` runs one of the paper's experiments instead (studies/presets.py), and
``--design ID`` (repeatable) the named designs. ``--dry-run`` lists what would be evaluated,
with exact costs and the estimated time on this machine (``--format json``: one
``search_space.describe()`` object per line); ``--list-presets`` lists the presets with
their trials and estimated time here. Without them the sweep runs: Ray Tune executes one
trial per (design, seed), Optuna proposes designs, and every result lands in
``runs/<name>/records/`` and the Optuna study ``runs/<name>/optuna.db``. Running the same
command again finishes what is missing (resuming interrupted trials at their last epoch)
and skips what is recorded. A sweep estimated longer than ``--confirm-above`` (2 h) asks
first (``--yes`` on a non-terminal). Bad input prints one line and exits 2, having created
nothing.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

try:
    import studies  # noqa: F401  (found only when the repository is installed or on the path)
except ModuleNotFoundError:  # `python studies/run.py` in a checkout that was not installed
    sys.exit("run.py: error: the igcbench packages are not importable: run "
             "`python -m pip install -e .` in the repository (or `python -m studies.run` there)")

from evaluators.catalog import DATASETS, DEFAULT_DATASET
from evaluators.fidelity import FIDELITIES, get_fidelity
from evaluators.record import records_dir, write_json_atomic
from studies import estimate as est
from studies.budget_report import SpaceModel
from studies.cli import Request, UsageError, build_parser, one_line, resolve
from studies.dry_run import write_dry_run
from studies.presets import PRESETS
from studies.store import RecordStore

__all__ = ["UsageError", "build_parser", "main", "resolve"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(__doc__.split("\n\n")[0]).parse_args(argv)
        if args.list_presets:
            return _list_presets(sys.stdout, sys.stderr)
        request = resolve(args, dry_run=args.dry_run)
        if args.dry_run:
            return _dry_run(request, args.format, sys.stdout, sys.stderr)
    except (ValueError, OSError) as e:  # UsageError, bad budget/net/fidelity, data, address
        print(f"run.py: error: {one_line(e)}", file=sys.stderr)
        return 2
    import ray

    from studies.sweep import SweepConfig, init_ray, run_sweep  # imports Ray: only now

    own_ray = False
    if request.address:  # connect before creating anything: refused auth, wrong version...
        try:
            own_ray = init_ray(request.address)
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, AuthenticationError
            # Ray's cause holds a whole traceback as text: its last line names the problem.
            lines = str(e.__cause__ or "").strip().splitlines()
            cause = f" ({lines[-1].strip()[:200]})" if lines else ""
            print(f"run.py: error: --address {request.address!r}: cannot connect: "
                  f"{one_line(e)[:200]}{cause}", file=sys.stderr)
            return 2
    try:
        if request.time_budget_s is not None:  # fits itself to the clock: nothing to confirm
            from studies.time_budget import run_time_budget

            _create_run_dir(request, argv)
            return run_time_budget(request, argv, space=space_model())
        costs = _costs(request, request.fidelity, sys.stderr)
        # A Ray already up (a cluster, or one this process started) sets the parallelism.
        estimate = _sweep_estimate(request, costs, started=ray.is_initialized())
        if not _confirmed(request, estimate, sys.stdin, sys.stderr):
            return 2
        _create_run_dir(request, argv)
        return run_sweep(SweepConfig(
            plan=request.plan, fidelity=request.fidelity, run_dir=request.run_dir,
            storage_url=request.storage_url, num_classes=request.num_classes,
            input_size=DATASETS[request.plan.dataset].side, data_dir=request.data_dir,
            scheduler=request.scheduler, cpus_per_trial=request.cpus_per_trial,
            gpus_per_trial=request.gpus_per_trial, address=request.address, costs=costs,
            estimate=estimate))
    except UsageError as e:  # the estimate is over --confirm-above and nobody said yes
        print(f"run.py: error: {one_line(e)}", file=sys.stderr)
        return 2
    finally:
        if own_ray:
            ray.shutdown()


def space_model() -> SpaceModel:
    """The analysis's whole-space answer (its surrogate over the committed zero-cost scores)
    for the time-budgeted sweep. The command a user runs sits above the layers and wires
    them: studies import no analysis, this entry hands it in (tests/test_structure.py)."""
    from analysis.table import space_answer as sa

    return SpaceModel(scores=sa.committed_scores, fit=sa.fit, pick=sa.pick,
                      answer=sa.answer_space)


# --- estimates ----------------------------------------------------------------------------


def _costs(request: Request, fidelity: Any, err: TextIO) -> est.TrialCosts:
    """The cost model for ``fidelity``'s trials of this request, on this machine."""
    threads = max(1, math.floor(request.cpus_per_trial))
    cal = est.calibration(fidelity, threads=threads, gpu=request.gpus_per_trial > 0, err=err)
    return est.TrialCosts(cal, fidelity.to_dict(), request.plan.dataset, request.num_classes)


def _slots(request: Request, started: bool) -> int:
    if started:  # connected to a cluster: its resources
        from studies.sweep import cluster_slots

        return cluster_slots(request.cpus_per_trial, request.gpus_per_trial)
    return est.local_slots(request.cpus_per_trial, request.gpus_per_trial)


def _sweep_estimate(request: Request, costs: est.TrialCosts, *,
                    started: bool = False) -> est.SweepEstimate:
    """The trials still without a record, at ``costs`` rescaled to the sweep's records."""
    store = RecordStore(request.run_dir)  # read only: nothing is created here
    keys = store.keys() & set(request.plan.all_pairs())
    records = [r for k in keys if (r := store.read(k)) is not None]
    return est.estimate(est.trials_to_run(request.plan, keys), costs.refitted(records),
                        _slots(request, started), started=started,
                        upper_bound=request.scheduler == "asha")


def _confirmed(request: Request, estimate: est.SweepEstimate, stdin: TextIO,
               err: TextIO) -> bool:
    """True when the sweep may start: within --confirm-above, --yes, or 'y' on a terminal.

    Raises:
        UsageError: over the threshold without a terminal to ask on (one line naming the
            cheaper ways and --yes).
    """
    if request.yes or est.within(estimate.total, request.confirm_above_s):
        return True
    message = est.confirm_message(estimate, request.confirm_above_s, request.plan.fidelity)
    if not (stdin.isatty() and err.isatty()):
        raise UsageError(message)
    err.write(message + "\nstart it? [y/N] ")
    err.flush()
    answer = stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    err.write("not started\n")
    return False


# --- dry run and presets ------------------------------------------------------------------


def _dry_run(request: Request, fmt: str, out: TextIO, err: TextIO) -> int:
    plan = request.plan
    costs = _costs(request, request.fidelity, err)
    seconds = {d: costs.seconds(d) for d in plan.design_ids}
    write_dry_run(plan.design_ids, out, fmt, request.num_classes, seconds)
    notes = err if fmt == "json" else out  # JSON lines stay parseable on stdout
    notes.write(f"{request.what} ({request.num_classes} classes)\n")
    estimate = _sweep_estimate(request, costs)
    recorded = plan.target - estimate.trials if not plan.adaptive else None
    seeds = f"{len(plan.seeds)} seed{'s' if len(plan.seeds) > 1 else ''}"
    notes.write(f"{plan.target} trials ({len(plan.design_ids)} designs x {seeds}, "
                f"{plan.search}) at fidelity {plan.fidelity} on {plan.dataset}"
                + (f", {recorded} recorded already in {request.run_dir}" if recorded else "")
                + "\n")
    notes.write(f"estimated on this machine: {estimate.describe()}\n")
    others = []
    for name in FIDELITIES:
        if name == plan.fidelity:
            continue
        fidelity = get_fidelity(name)
        other = _sweep_estimate(request, _costs(request, fidelity, err))
        others.append(f"{name} ~{est.fmt_seconds(other.total)}")
    notes.write(f"the same trials at the other fidelities: {', '.join(others)}\n")
    notes.write(f"(an estimate, from the {estimate.source}; docs/studies.md gives its "
                "measured error)\n")
    if request.time_budget_s is not None:
        _time_budget_plan(request, notes, err)
    if request.data_note:
        notes.write(f"note: {request.data_note}\n")
    if request.power_note:
        notes.write(f"--seeds-for-power: {request.power_note}\n")
    return 0


def _time_budget_plan(request: Request, notes: TextIO, err: TextIO) -> None:
    """What ``--time-budget`` would do here: its plan, and the least budget that trains."""
    from studies.budget_plan import MARGIN_S, MAX_TRIAL_SHARE, dry_plan
    from studies.rungs import n_designs, rung_words

    plan, why = dry_plan(request, err)
    ladder = why["ladder"]
    budget = est.fmt_seconds(request.time_budget_s)
    notes.write(f"with --time-budget {budget} (the estimate above is the full grid): "
                f"successive halving on {len(ladder)} rungs below {request.fidelity.name}, "
                f"{why['workers']} trials at a time; the answer within {budget} + "
                f"{est.fmt_seconds(MARGIN_S)}\n")
    if why["too_long"] or why["skipped"]:
        notes.write(f"  not trained, predicted instead: {n_designs(len(why['too_long']))} "
                    f"over {est.fmt_seconds(MAX_TRIAL_SHARE * request.time_budget_s)} a "
                    f"trial at the cheapest rung (a quarter of the budget), "
                    f"{len(why['skipped'])} over the memory of a trial\n")
    if plan is None:
        notes.write("  plan: no training fits; the answer would be predicted only (zero-cost "
                    "scores, the surrogate)\n")
    else:
        notes.write("  plan: " + ", ".join(
            f"{n_designs(n)} at rung {r} ({rung_words(ladder[r])})"
            for r, n in zip(plan.rungs, plan.designs, strict=True))
            + f"; expected {est.fmt_seconds(plan.predicted_s)} of "
            f"{est.fmt_seconds(why['seconds'])} for trials (the sweep plans again from its "
            "first trials' times)\n")
    least = why["min_budget"]
    notes.write("  the smallest budget that trains anything here: "
                + (f"--time-budget {est.fmt_seconds(least)}" if least else "none (no design "
                   "fits memory)") + "\n")


def _list_presets(out: TextIO, err: TextIO) -> int:
    """Each preset with its trials and estimated time here (its default fidelity, seeds)."""
    rows = []
    for name, preset in PRESETS.items():
        fidelity = get_fidelity(preset.fidelity)
        dataset = preset.dataset or DEFAULT_DATASET
        threads = fidelity.threads or 1
        cal = est.calibration(fidelity, threads=threads, err=err)
        costs = est.TrialCosts(cal, fidelity.to_dict(), dataset, DATASETS[dataset].classes)
        trials = [d for _ in preset.seeds for d in preset.design_ids]  # grid: seed-major
        estimate = est.estimate(trials, costs, est.local_slots(threads))
        rows.append([name, str(len(preset.design_ids)), str(len(preset.seeds)),
                     str(len(trials)), preset.fidelity, dataset,
                     f"~{est.fmt_seconds(estimate.total)} ({estimate.slots} at a time)",
                     preset.summary])
    heads = ["preset", "designs", "seeds", "trials", "fidelity", "dataset", "estimated here",
             "what"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    for row in [heads, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  + "\n")
    out.write("(estimates: the cost model with this machine's calibrations, at each preset's "
              "default fidelity, seeds and dataset; --preset P --dry-run shows its designs "
              "and the other fidelities)\n")
    return 0


# --- doing ---------------------------------------------------------------------------------


def _create_run_dir(request: Request, argv: list[str]) -> None:
    records_dir(request.run_dir).mkdir(parents=True, exist_ok=True)
    path = request.run_dir / "run.json"
    if not path.exists():  # written once: later runs of the same sweep keep the first
        write_json_atomic(path, request.config(argv))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:  # Ctrl-C before the sweep started: nothing was created yet
        print("\nrun.py: interrupted", file=sys.stderr)
        sys.exit(130)
