"""Progress of a long sweep on stderr, and the summary table at its end.

On a terminal one status line is rewritten at every trial event; otherwise (a log file,
nohup, CI) each event is one line, so the log reads as a history::

    [   41s] ok      plain8-c16-k1.4.4 s0  val 0.730  4s | done 1/3 (ok 1) | running 2 |
             best 0.730 plain8-c16-k1.4.4 s0 | left ~8s

(one line, folded here). Events: a trial starts (``start``, or ``resume`` from its
checkpoint), finishes an epoch (``epoch 2/4 ... val 0.540, ~5s left in the trial``), or
ends (``ok``, ``failed``, ``stopped``, ``error``, ``interrupted``).

"left" is the sweep's ETA from the cost model (studies.estimate.SweepClock): the trials not
yet started at their predicted times, rescaled to this sweep's finished records as they
arrive, laid out on the sweep's parallel slots behind the running trials' own time left.
A sweep with a deadline (a rung of ``--time-budget``) never says more than the time to it,
and adds the whole time budget's own time left (``budget left ~``). A trial that runs
longer than ``HEARTBEAT_S`` without a line prints one (``running ... for 2m10s, ~3m left in
the trial``), so a long trial is never minutes of silence.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from ray import tune

from studies.estimate import SweepClock, fmt_seconds
from studies.ledger import Finished, Ledger

__all__ = ["Progress", "describe_outcome", "fmt_seconds", "status", "summary_rows",
           "write_summary"]

HEARTBEAT_S = 60.0  # a line at least this often while a trial runs


class Progress(tune.Callback):
    """One status line per trial event (start, epoch, end)."""

    def __init__(self, ledger: Ledger, out: TextIO | None = None,
                 clock: SweepClock | None = None, deadlines: tuple[float, float] | None = None):
        """``deadlines``: (this sweep's end, the whole time budget's end), monotonic
        seconds, for a rung of ``--time-budget``."""
        self.ledger = ledger
        self.out = out if out is not None else sys.stderr
        self.clock = clock
        self.deadlines = deadlines
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._seen = 0  # finished outcomes already shown
        self._last = time.monotonic()  # when the last line was shown

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "out": None}  # a stream does not pickle (see Ledger)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run = self.ledger.running.get(trial.trial_id)
        if run is not None:
            epoch = saved_epoch(run.checkpoint)
            self._show(f"resume  {run.design_id} s{run.seed} after epoch {epoch} (its "
                       "checkpoint)" if epoch else f"start   {run.design_id} s{run.seed}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        run = self.ledger.running.get(trial.trial_id)
        if run is None or "record" in result or "epoch" not in result:
            return
        epochs = self.ledger.fidelity.epochs
        text = f"epoch {result['epoch']}/{epochs} {run.design_id} s{run.seed}"
        val = result.get("val_acc")
        if val is not None and val == val:  # NaN: no accuracy
            text += f"  val {val:.3f}"
        if self.clock is not None and run.started is not None:
            left = self.clock.trial_left(run.design_id, time.monotonic() - run.started,
                                         run.curve)
            text += f", ~{fmt_seconds(left)} left in the trial"
        self._show(text)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Tune's loop, every step: a heartbeat of each trial running past HEARTBEAT_S when
        no line was shown for that long."""
        now = time.monotonic()
        if now - self._last < HEARTBEAT_S:
            return
        for run in list(self.ledger.running.values()):
            if run.started is not None and now - run.started >= HEARTBEAT_S:
                text = f"running {run.design_id} s{run.seed} for {fmt_seconds(now - run.started)}"
                if self.clock is not None:
                    left = self.clock.trial_left(run.design_id, now - run.started, run.curve)
                    text += (f", ~{fmt_seconds(left)} left in the trial (predicted)"
                             if left >= 1 else ", past its predicted "
                             f"{fmt_seconds(self.clock.costs.seconds(run.design_id))}")
                self._show(text)
        self._last = now

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._show_finished()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._show_finished()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._show_finished()
        if self.tty:
            self.out.write("\n")
            self.out.flush()

    def _show_finished(self) -> None:
        new = self.ledger.finished[self._seen:]
        if self.clock is not None and any(f.outcome == "ok" for f in new):
            self.clock.refit(r for k in self.ledger.recorded_keys()
                             if (r := self.ledger.store.read(k)) is not None)
        for f in new:
            self._show(describe_outcome(f))
        self._seen = len(self.ledger.finished)

    def _show(self, event: str) -> None:
        elapsed = fmt_seconds(time.monotonic() - self.ledger.t0)
        line = f"[{elapsed:>6}] {event} | {status(self.ledger, self.clock, self.deadlines)}"
        self._last = time.monotonic()
        if self.tty:  # rewrite the line in place; a wrapped line could not be rewritten
            width = shutil.get_terminal_size().columns
            self.out.write("\r\x1b[2K" + line[: max(20, width - 1)])
        else:
            self.out.write(line + "\n")
        self.out.flush()


def saved_epoch(path: str | None) -> int | None:
    """The last epoch a trial's checkpoint file holds (None: no readable checkpoint)."""
    if not path or not Path(path).is_file():
        return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state["epoch"])
    except Exception:  # unreadable: the trial starts afresh
        return None


def describe_outcome(f: Finished) -> str:
    """``ok      plain8-c16-k1.4.4 s0  val 0.730  4.1s`` (or the reason it failed)."""
    head = f"{f.outcome:<7} {f.design_id} s{f.seed}"
    if f.outcome == "ok":
        return f"{head}  val {f.val_acc:.3f}  {fmt_seconds(f.seconds)}"
    return f"{head}  {(f.reason or '')[:100]}"


def status(ledger: Ledger, clock: SweepClock | None = None,
           deadlines: tuple[float, float] | None = None) -> str:
    """done/target, outcomes, running, best so far, the sweep's ETA (with a clock; never
    past the sweep's deadline), the time budget's time left (with ``deadlines``)."""
    c = ledger.counts()
    finished = c["ok"] + c["failed"] + c["stopped"]
    done = c["before"] + finished
    parts = [f"done {done}/{ledger.plan.target}"]
    kinds = [f"{k} {c[k]}" for k in ("ok", "failed", "stopped", "error", "interrupted", "before")
             if c[k]]
    if kinds:
        parts[0] += " (" + ", ".join(kinds) + ")"
    parts.append(f"running {c['running']}" + (f" +{c['pending']} queued" if c["pending"] else ""))
    best = ledger.best()
    if best is not None:
        parts.append(f"best {best.val_acc:.3f} {best.design_id} s{best.seed}")
    left = sweep_left(ledger, clock) if clock is not None and not ledger.interrupted() \
        else None
    now = time.monotonic()
    if left and deadlines is not None:
        left = min(left, max(0.0, deadlines[0] - now))
    if left:
        parts.append(f"left ~{fmt_seconds(left)}")
    if deadlines is not None:
        parts.append(f"budget left ~{fmt_seconds(max(0.0, deadlines[1] - now))}")
    return " | ".join(parts)


def sweep_left(ledger: Ledger, clock: SweepClock) -> float:
    """Seconds until the sweep ends, by the cost model (see the module docstring)."""
    now = time.monotonic()
    running = [(r.design_id, now - r.started, r.curve) for r in ledger.running.values()
               if r.started is not None]
    waiting = [r.design_id for r in ledger.running.values() if r.started is None]
    plan = ledger.plan
    if not plan.adaptive:
        waiting += [d for d, s in plan.ordered_pairs() if ledger.is_free(plan.key(d, s))]
    else:
        free = [d for d, s in plan.ordered_pairs() if ledger.is_free(plan.key(d, s))]
        left = ledger.to_start() - len(waiting)
        waiting += [free[i % len(free)] for i in range(max(0, left))] if free else []
    return clock.sweep_left(running, waiting)


def summary_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per design: params, seeds ok/recorded, mean and spread of val/test acc."""
    by_design: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_design.setdefault(r["design_id"], []).append(r)
    rows = []
    for design_id, recs in by_design.items():
        ok = [r for r in recs if r["status"] == "ok" and r.get("val_acc") is not None]
        vals = [float(r["val_acc"]) for r in ok]
        tests = [float(r["test_acc"]) for r in ok if r.get("test_acc") is not None]
        rows.append({
            "design": design_id, "params": recs[0].get("params"), "ok": len(ok),
            "seeds": len(recs),
            "val_acc": statistics.fmean(vals) if vals else None,
            "val_sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "test_acc": statistics.fmean(tests) if tests else None,
            "wall_s": statistics.fmean(float(r["wall_s"]) for r in recs),
            "failed": ", ".join(sorted({str(r.get("reason")).split(":")[0] for r in recs
                                        if r["status"] != "ok"})),
        })
    rows.sort(key=lambda r: (r["val_acc"] is None, -(r["val_acc"] or 0.0), r["design"]))
    return rows


def write_summary(records: Iterable[dict[str, Any]], out: TextIO) -> None:
    """The summary table: designs by mean val_acc (best first)."""
    rows = summary_rows(records)
    if not rows:
        out.write("no records\n")
        return

    def acc(mean: float | None, sd: float | None) -> str:
        if mean is None:
            return "-"
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    cells = [[r["design"], f"{r['params']:,}" if r["params"] is not None else "-",
              f"{r['ok']}/{r['seeds']}", acc(r["val_acc"], r["val_sd"]),
              acc(r["test_acc"], None), f"{r['wall_s']:.1f}", r["failed"]] for r in rows]
    heads = ["design", "params", "ok", "val_acc", "test_acc", "wall_s", "failed"]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    right = {1, 4, 5}
    for line in [heads, *cells]:
        out.write("  ".join(x.rjust(w) if i in right else x.ljust(w)
                            for i, (x, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                  + "\n")
