"""Optuna proposes, Ray Tune executes: a Tune ``Searcher`` over a persistent Optuna study.

Why not Ray's ``OptunaSearch``: it keeps its own bookkeeping of Optuna trials in memory,
so after ``kill -9`` the persistent study holds orphaned RUNNING trials and a re-run
re-proposes designs that are already recorded; and on a finite list of design ids TPE and
NSGA-II propose finished designs again, which OptunaSearch would simply re-train. This
searcher does what OptunaSearch does (``study.ask()`` in ``suggest``, ``tell`` when the
trial ends, through :class:`studies.ledger.Ledger`) and in addition checks every proposal
against the result store before Tune schedules it.

How each ``--search`` picks the next (design, seed):

- ``grid``: the plan's pairs in order (``Plan.ordered_pairs``), each handed to Optuna with
  ``study.enqueue_trial`` so the study holds one trial per pair, in order.
- ``random``: the same over a seeded permutation of the designs (without replacement).
- ``tpe`` / ``nsga2``: Optuna's ``TPESampler`` / ``NSGAIISampler`` (two objectives:
  val_acc up, params down) samples ``design_id``; the driver adds the design's lowest free
  seed and queues its other free seeds next, so every design it proposes is trained at
  every seed before the sampler is asked again. A proposal of a design that has no free
  seed left is told FAIL with the user attribute ``skipped`` and replaced by a random free
  design (enqueued): the sampler never makes the sweep train a key twice.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import optuna
from ray.tune.search import Searcher

from studies import study as st
from studies.ledger import Ledger, Running
from studies.trainable import METRIC

_MAX_SKIPS = 8  # proposals in a row that may be refused before falling back to a free pair


class DesignSearcher(Searcher):
    """Suggests one (design, seed) per Tune trial; FINISHED when the plan's target is met.

    Tune calls :meth:`suggest` whenever it could start a trial; None means "nothing now,
    ask again" (the only free work is running in another driver).
    """

    def __init__(self, ledger: Ledger):
        super().__init__(metric=METRIC, mode="max")
        self.ledger = ledger
        self.plan = ledger.plan
        self.dist = st.distribution(self.plan.design_ids)
        self.rng = random.Random(self.plan.sampler_seed)
        self.queue: deque[tuple[str, int]] = deque()
        if self.plan.adaptive:
            self._queue_unfinished_designs()

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return True  # the space is ours (the plan), not Tune's param_space

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        ledger = self.ledger
        if ledger.to_start() <= 0:
            # Done, unless another driver holds keys we need: if it dies, they come back.
            return None if ledger.waiting_on_others() else Searcher.FINISHED
        for _ in range(_MAX_SKIPS):
            pair = self._next_fixed_pair()
            if pair is None and (not self.plan.adaptive or not self._any_free()):
                return None  # what is left runs in another driver: ask again later
            run = self._propose(trial_id, pair)
            if run is not None:
                ledger.register(run)
                return {"key": run.key, "design_id": run.design_id, "seed": run.seed,
                        "optuna_trial": run.optuna_number, "checkpoint": run.checkpoint}
        return None

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass  # recorded by studies.recorder.Recorder, which sees the unflattened result

    def save(self, checkpoint_path: str) -> None:
        pass  # the state lives in the result store and the Optuna study, not in Tune

    def restore(self, checkpoint_path: str) -> None:
        pass

    # --- proposals ----------------------------------------------------------------------

    def _propose(self, trial_id: str, pair: tuple[str, int] | None) -> Running | None:
        """Ask Optuna for a trial (``pair`` enqueued first, or the sampler's choice)."""
        if pair is not None:
            self.ledger.study.enqueue_trial({st.PARAM: pair[0]}, user_attrs={"seed": pair[1]})
        with st.quiet():
            trial = self.ledger.study.ask()
        design_id = trial.suggest_categorical(st.PARAM, self.dist.choices)
        seed = trial.user_attrs.get("seed")
        if seed is None:  # the sampler chose the design; we choose the seed
            free = self._free_seeds(design_id)
            seed = free[0] if free else None
            if seed is not None:
                self.queue.extend((design_id, s) for s in free[1:])
        key = self.plan.key(design_id, seed) if seed is not None else None
        if key is None or not self._wanted(key):
            self._skip(trial, design_id)
            return None
        for name, value in {st.KEY_ATTR: key, "seed": seed, "fidelity": self.plan.fidelity,
                            "dataset": self.plan.dataset}.items():
            trial.set_user_attr(name, value)
        return Running(key=key, design_id=design_id, seed=int(seed),
                       optuna_trial_id=trial._trial_id, optuna_number=trial.number,
                       tune_trial_id=trial_id, checkpoint=self.ledger.checkpoint_path(key))

    def _next_fixed_pair(self) -> tuple[str, int] | None:
        """The next pair we choose ourselves (None: let the sampler choose)."""
        free = self.ledger.is_free
        if not self.plan.adaptive:
            return next(((d, s) for d, s in self.plan.ordered_pairs()
                         if free(self.plan.key(d, s))), None)
        while self.queue:
            d, s = self.queue.popleft()
            if free(self.plan.key(d, s)):
                return d, s
        return None

    def _wanted(self, key: str) -> bool:
        if not self.ledger.is_free(key):
            return False
        target = self.ledger.target_keys()
        return target is None or key in target

    def _any_free(self) -> bool:
        return any(self._free_seeds(d) for d in self.plan.design_ids)

    def _free_seeds(self, design_id: str) -> list[int]:
        return [s for s in self.plan.seeds if self.ledger.is_free(self.plan.key(design_id, s))]

    def _skip(self, trial: optuna.Trial, design_id: str) -> None:
        """Refuse a proposal: FAIL it (samplers ignore FAIL) and queue a free pair instead."""
        trial.set_user_attr("skipped", f"{design_id}: not needed (recorded, running, or "
                                       "outside the plan's target)")
        self.ledger.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if self.plan.adaptive and not self.queue:
            options = [d for d in self.plan.design_ids if self._free_seeds(d)]
            if options:
                d = self.rng.choice(options)
                self.queue.extend((d, s) for s in self._free_seeds(d))

    def _queue_unfinished_designs(self) -> None:
        """After a crash: designs with some seeds recorded get their other seeds first."""
        recorded = self.ledger.recorded_keys()
        for d in self.plan.design_ids:
            keys = [self.plan.key(d, s) for s in self.plan.seeds]
            if any(k in recorded for k in keys):
                self.queue.extend((d, s) for s, k in zip(self.plan.seeds, keys, strict=True)
                                  if k not in recorded)
