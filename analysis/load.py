"""Result records -> one pandas DataFrame, and the per-design aggregate over seeds.

The record (its columns, its key, how a run directory's files are read) is owned by
:mod:`evaluators.record`; this module makes the DataFrame of it.

Example:
    >>> df = frame_from_records([{"design_id": "a", "fidelity": "cpu", "dataset": "cifar10",
    ...     "seed": s, "status": "ok", "test_acc": acc} for s, acc in enumerate((0.5, 0.6, 0.7))])
    >>> row = aggregate(df).iloc[0]
    >>> f"{row.test_acc_mean:.3f} ± {row.test_acc_std:.3f} over {row.test_acc_n} seeds"
    '0.600 ± 0.100 over 3 seeds'
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluators.record import (
    COLUMNS,
    KEY,
    MEASURES,
    OPTIONAL_KEYS,
    read_records,
    records_dir,
)
from search_space import DESCRIBE_KEYS, DESCRIBE_MEASURES

#: Columns every results frame has (NaN/None where a record lacks them); a key that older
#: records lack (OPTIONAL_KEYS) is a column only when some record has it, so a frame of old
#: records, and a release of it, is what it was before the key existed.
STANDARD_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_KEYS)

_FLOATS = (*MEASURES, *DESCRIBE_MEASURES)  # held as float, whatever a record wrote


def load_results(run_dir: str | Path | None, *, storage: str | None = None) -> pd.DataFrame:
    """Read a run directory's records (and optionally an Optuna storage) into one DataFrame.

    One row per (design_id, fidelity, dataset, seed), with every describe() field, the results,
    ``curve`` as a column of lists, and ``record_file``. Failed records are kept (status
    'failed'); the claim tests and fronts filter on ``status == 'ok'`` themselves.

    Args:
        run_dir: ``runs/<name>/``; its ``records/*.json`` are read. May be None when
            ``storage`` is given.
        storage: optional Optuna storage URL (e.g. ``sqlite:///runs/x/optuna.db``). Trials are
            joined on the record key through their user attributes ``design_id``, ``fidelity``,
            ``dataset``, ``seed`` (adding ``optuna_study``, ``optuna_trial``, ``optuna_state``);
            a trial whose user attribute ``record`` holds a whole record adds that record when
            no file has it (a cluster run whose records live only in the shared storage).

    Returns:
        The DataFrame; empty (with the standard columns) when there are no records.

    Raises:
        FileNotFoundError: when ``run_dir`` has no ``records/`` directory and no storage is
            given.

    Example:
        >>> import tempfile
        >>> from studies.store import RecordStore
        >>> run = tempfile.mkdtemp()
        >>> key = RecordStore(run).write({"design_id": "a", "fidelity": "cpu",
        ...     "dataset": "cifar10", "seed": 0, "status": "ok", "test_acc": 0.5})
        >>> load_results(run)[["design_id", "seed", "test_acc"]].to_dict("records")
        [{'design_id': 'a', 'seed': 0, 'test_acc': 0.5}]
    """
    records: list[dict[str, Any]] = []
    if run_dir is not None:
        rec_dir = records_dir(run_dir)
        if not rec_dir.is_dir():
            if storage is None:
                raise FileNotFoundError(
                    f"no records directory {rec_dir} (expected RUN_DIR/records)"
                )
        else:
            records = [{**r, "record_file": str(p)} for p, r in read_records(rec_dir)]
    elif storage is None:
        raise FileNotFoundError("load_results needs a run directory or a storage URL")
    trials = _optuna_trials(storage) if storage else []
    have = {_key_of(r) for r in records}
    records += [t["record"] for t in trials if t.get("record") and _key_of(t["record"]) not in have]
    df = frame_from_records(records)
    return _join_trials(df, trials) if storage else df


def frame_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise record dicts (the schema of docs/internals.md) into the results DataFrame.

    Guarantees the standard columns, numeric dtypes for accuracies and costs, ``K`` and
    ``curve`` as lists, and one row per key: when a key repeats, the latest ``created`` wins.
    """
    rows = [dict(r) for r in records]
    for r in rows:
        if r.get("design_id") is None and r.get("id") is not None:
            r["design_id"] = r["id"]
    df = pd.DataFrame(rows)
    for col in (*STANDARD_COLUMNS, "record_file"):
        if col not in df.columns:
            df[col] = None
    for col in _FLOATS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    for col in ("K", "curve"):
        df[col] = [list(v) if isinstance(v, list | tuple) else v for v in df[col]]
    df = _zero_cost_columns(df)
    df = _dedupe(df)
    front = [*KEY, "status", "val_acc", "test_acc"]
    return df[front + [c for c in df.columns if c not in front]].reset_index(drop=True)


#: Prefix of the columns holding a zc record's scores: ``zc_synflow``, ``zc_theory``, ...
ZC_PREFIX = "zc_"


def _zero_cost_columns(df: pd.DataFrame) -> pd.DataFrame:
    """One float column ``zc_<name>`` per zero-cost score of the records that have them
    (``zero_cost["scores"]``, a dict or its JSON text as a release stores it); NaN
    elsewhere. A frame without zc records is left as it is."""
    if "zero_cost" not in df.columns:
        return df
    scores = [_scores_of(v) for v in df["zero_cost"]]
    names = list(dict.fromkeys(n for s in scores for n in s))
    cols = {f"{ZC_PREFIX}{n}": [_num(s.get(n)) for s in scores] for n in names}
    return df.assign(**cols) if cols else df


def _scores_of(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value.get("scores") or {}) if isinstance(value, Mapping) else {}


def _num(v: Any) -> float:
    try:
        return np.nan if v is None else float(v)
    except (TypeError, ValueError):
        return np.nan


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds of val_acc and test_acc, per (design_id, fidelity, dataset).

    Only ``status == 'ok'`` seeds count towards the statistics; ``n_failed`` counts the others,
    so a design whose every seed failed still appears, with n = 0. The describe() fields ride
    along; latencies are the median over ok seeds.
    """
    keys = list(KEY[:3])
    ok = df["status"].eq("ok")
    work = df.assign(
        val_acc=df["val_acc"].where(ok),
        test_acc=df["test_acc"].where(ok),
        latency_b1_ms=df["latency_b1_ms"].where(ok),
        latency_b64_ms=df["latency_b64_ms"].where(ok),
        n_failed=(~ok).astype(int),
    )
    g = work.groupby(keys, sort=True, dropna=False)
    stats = g[["val_acc", "test_acc"]].agg([("mean", _seed_mean), ("std", _seed_std),
                                            ("n", "count")])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    extra = g.agg(
        n_failed=("n_failed", "sum"),
        latency_b1_ms=("latency_b1_ms", "median"),
        latency_b64_ms=("latency_b64_ms", "median"),
    )
    describe = g[[c for c in DESCRIBE_KEYS if c in df.columns]].first()
    return pd.concat([stats, extra, describe], axis=1).reset_index()


def mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1) over seeds, NaN left out: the one
    statistic over seeds of the analysis (aggregate, the benchmark table's answers).
    None for a mean of nothing and for the spread of one value."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None, None
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else None)


def _seed_mean(x: pd.Series) -> float:
    mean = mean_std(x.to_numpy(float))[0]
    return np.nan if mean is None else mean


def _seed_std(x: pd.Series) -> float:
    std = mean_std(x.to_numpy(float))[1]
    return np.nan if std is None else std


def _key_of(rec: Mapping[str, Any]) -> tuple[str, str, str, int] | None:
    try:
        design = rec.get("design_id") or rec["id"]
        return str(design), str(rec["fidelity"]), str(rec["dataset"]), int(rec["seed"])
    except (KeyError, TypeError, ValueError):
        return None


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} records share a key; keeping the latest 'created' of each",
            stacklevel=3,
        )
    order = df["created"].fillna("").astype(str)
    df = df.assign(_order=order).sort_values("_order", kind="stable")
    return df.drop_duplicates(list(KEY), keep="last").drop(columns="_order").sort_index()


def _optuna_trials(storage: str) -> list[dict[str, Any]]:
    import optuna  # imported here: only this optional path needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            attrs = {**t.params, **t.user_attrs}
            rec = attrs.get("record") if isinstance(attrs.get("record"), dict) else None
            out.append(
                {
                    "key": _key_of(rec or attrs),
                    "record": rec,
                    "optuna_study": summary.study_name,
                    "optuna_trial": t.number,
                    "optuna_state": t.state.name,
                }
            )
    return out


def _join_trials(df: pd.DataFrame, trials: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["optuna_study", "optuna_trial", "optuna_state"]
    by_key = {t["key"]: t for t in trials if t["key"] is not None}
    keys = [_key_of(r) for r in df[list(KEY)].to_dict("records")]
    for col in cols:
        df[col] = [by_key[k][col] if k in by_key else np.nan for k in keys]
    return df
