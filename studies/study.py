"""The Optuna study of a sweep: one trial per (design, seed), kept consistent with the store.

Each finished record becomes one Optuna trial of a two-objective study (maximise
``val_acc``, minimise ``params``): COMPLETE for an ``ok`` record, FAIL for a failed one,
PRUNED for one that ASHA stopped. The trial's only parameter is ``design_id`` (a categorical
over the plan's design ids, which is what TPE and NSGA-II model); the seed, the record key,
every ``describe()`` field and the whole record (``record``) are user attributes, so
optuna-dashboard, ``optuna.load_study(...).trials_dataframe()`` and
``analysis.load_results(storage=...)`` read them.

The result store is the source of truth. :func:`reconcile` adds the trials a crash left
untold, and :func:`tell_record` refuses to make a second COMPLETE trial for a key (a second
driver, or a re-run, that evaluated the same key is told FAIL with ``duplicate_of``).
Trials left RUNNING by a killed driver are found by Optuna's heartbeat
(``RDBStorage(heartbeat_interval=...)``) and failed by :func:`fail_stale`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from evaluators.record import is_stopped
from studies.sampling import DIRECTIONS, METRIC_NAMES, PARAM

KEY_ATTR = "key"  # user attribute naming the record a trial belongs to
GRACE_S = 30  # default of stale_after_s()
# Record keys not copied into user attributes (too big, or provenance): only in "record".
NOT_ATTRS = ("curve", "fidelity_config", "torch_version", "commit", "commit_dirty")

optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per created trial


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Optuna's warnings about what we do on purpose: ask/tell with heartbeats
    (we send them ourselves), and the experimental heartbeat and metric-name APIs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


def stale_after_s() -> int:
    """Seconds without a heartbeat after which a RUNNING trial belongs to a dead driver.

    Its trial is then failed and its key runs again; a re-run right after ``kill -9`` waits
    up to this long for the dead driver's trials. ``IGCBENCH_STALE_AFTER_S`` overrides
    GRACE_S (the tests use a few seconds).
    """
    return max(3, int(os.environ.get("IGCBENCH_STALE_AFTER_S", GRACE_S)))


def heartbeat_s() -> int:
    """Seconds between heartbeats of a running trial: six per grace period."""
    return max(1, stale_after_s() // 6)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite, PostgreSQL, MySQL) with heartbeats; creates its tables.

    OptunaSearch and ``optuna.create_study`` both accept an instance, and only an instance
    can carry the heartbeat settings.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Two drivers (or a driver and optuna-dashboard) on one SQLite file: wait for the
        # other's write lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True  # a long sweep outlives idle DB connections
    with quiet():
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                          heartbeat_interval=heartbeat_s(),
                                          grace_period=stale_after_s())


def open_study(storage: optuna.storages.BaseStorage, name: str,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create or load the study ``name`` (two objectives: val_acc up, params down)."""
    with quiet():
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    directions=list(DIRECTIONS), load_if_exists=True)
        study.set_metric_names(list(METRIC_NAMES))
    return study


def distribution(design_ids: Iterable[str]) -> CategoricalDistribution:
    """The ``design_id`` categorical; choices in plan order (TPE/NSGA-II sample from it)."""
    return CategoricalDistribution(tuple(design_ids))


def trial_attrs(record: dict[str, Any], key: str) -> dict[str, Any]:
    """User attributes of the trial of ``record``: key, describe() fields, outcome, and the
    whole record under ``record`` (``analysis.load_results(storage=...)`` reads it, so a
    study in a shared database is complete without the run directory's files)."""
    attrs = {k: v for k, v in record.items() if k not in NOT_ATTRS}
    attrs[KEY_ATTR] = key
    attrs["record"] = record
    attrs["epochs_done"] = len(record.get("curve") or ())
    return attrs


def state_of(record: dict[str, Any]) -> TrialState:
    """COMPLETE for ok, PRUNED for a trial ASHA stopped, FAIL otherwise."""
    if record["status"] == "ok":
        return TrialState.COMPLETE
    if is_stopped(record):
        return TrialState.PRUNED
    return TrialState.FAIL


def values_of(record: dict[str, Any]) -> list[float] | None:
    """The objectives (val_acc, params) of an ok record; None for the others."""
    if record["status"] != "ok" or record.get("val_acc") is None:
        return None
    return [float(record[name]) for name in METRIC_NAMES]


def finished_by_key(study: optuna.Study,
                    states: tuple[TrialState, ...] = (TrialState.COMPLETE,)
                    ) -> dict[str, FrozenTrial]:
    """The first trial in ``states`` of each key (trial number order)."""
    found: dict[str, FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=states):
        key = t.user_attrs.get(KEY_ATTR)
        if key is not None and key not in found:
            found[key] = t
    return found


def running_keys(study: optuna.Study) -> dict[str, int]:
    """Keys of RUNNING trials (of any driver) -> trial id."""
    return {t.user_attrs[KEY_ATTR]: t._trial_id
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if KEY_ATTR in t.user_attrs}


def tell_record(study: optuna.Study, trial_id: int, record: dict[str, Any], key: str,
                design_ids: Iterable[str]) -> TrialState:
    """Finish RUNNING trial ``trial_id`` with ``record``; return the state it was told.

    A key that already has a COMPLETE trial is not given a second one: the trial is told
    FAIL with the user attribute ``duplicate_of`` (that trial's number). A trial that is no
    longer RUNNING (failed as stale while this driver was stalled) is left as it is and the
    record is added as a new trial instead, so the record is never lost.
    """
    storage = study._storage
    state, values = state_of(record), values_of(record)
    try:
        for name, value in trial_attrs(record, key).items():
            storage.set_trial_user_attr(trial_id, name, value)
        if state == TrialState.COMPLETE:
            prior = finished_by_key(study).get(key)
            if prior is not None and prior._trial_id != trial_id:
                storage.set_trial_user_attr(trial_id, "duplicate_of", prior.number)
                state, values = TrialState.FAIL, None
        storage.set_trial_state_values(trial_id, state=state, values=values)
    except optuna.exceptions.UpdateFinishedTrialError:
        add_record(study, record, key, design_ids)
    return state


def add_record(study: optuna.Study, record: dict[str, Any], key: str,
               design_ids: Iterable[str]) -> bool:
    """Add ``record`` as a finished trial unless the study has it; True if added.

    The study has it when a finished trial carries the same key and the same ``created``
    time (the record was told), or, for an ok record, when its key has a COMPLETE trial.
    """
    choices = tuple(design_ids)
    if record["design_id"] not in choices or _has(study, record, key):
        return False
    study.add_trial(optuna.trial.create_trial(
        state=state_of(record), values=values_of(record), params={PARAM: record["design_id"]},
        distributions={PARAM: CategoricalDistribution(choices)},
        user_attrs=trial_attrs(record, key)))
    return True


def reconcile(study: optuna.Study, records: Iterable[tuple[str, dict[str, Any]]],
              design_ids: Iterable[str]) -> int:
    """Give every ``(key, record)`` its finished trial; return how many were added (records
    whose driver died between writing them and telling the study)."""
    choices = tuple(design_ids)
    return sum(add_record(study, record, key, choices) for key, record in records)


def _has(study: optuna.Study, record: dict[str, Any], key: str) -> bool:
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(KEY_ATTR) != key or not t.state.is_finished():
            continue
        if t.user_attrs.get("created") == record.get("created"):
            return True
        if record["status"] == "ok" and t.state == TrialState.COMPLETE:
            return True
    return False


def fail_trial(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> None:
    """FAIL a trial with its reason (user attribute ``error``), unless it already ended."""
    # Already ended: another driver failed it as stale meanwhile, which is all this wanted.
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial_id, "error", reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)


def fail_stale(study: optuna.Study) -> None:
    """FAIL the RUNNING trials whose driver stopped sending heartbeats (killed, crashed)."""
    with quiet():
        optuna.storages.fail_stale_trials(study)
