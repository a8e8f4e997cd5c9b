"""A table as a syne-tune blackbox: written with its ``serialize``, read with its ``deserialize``.

A blackbox directory (``python -m analysis.interop.export syne-tune RELEASE.json OUT_DIR``)
holds one task, named by the table's dataset, with

- the configuration space of the design's factors (``analysis.interop.space``: ``width``
  and the branch sizes ``k_l`` as ``lograndint``, ``L`` as ``randint``, ``branching`` as
  ``choice``);
- the fidelity space ``{"epoch": randint(1, E)}`` and its values 1..E;
- the seeds (syne-tune's seed i is the table's seed ``metadata["seeds"][i]``);
- the objectives :data:`analysis.interop.space.OBJECTIVES`, ``train_seconds`` cumulative (the
  simulator's ``elapsed_time_attr``).

syne-tune's own ``BlackboxTabular`` answers only the table's configurations (any other
raises). :func:`load_blackbox` gives the same table as :class:`NearestDesignBlackbox`, which
answers any configuration of the space by its nearest design (``design_index`` says which),
so syne-tune's searchers, which sample the whole space, run on it unchanged. Its seeds are
syne-tune's: the simulator draws one per trial and keeps it for the trial.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from evaluators.record import replace_dir

from .space import LOG_FACTORS, OBJECTIVES, DesignSpace, is_k, nearest_index

FIDELITY = "epoch"
ELAPSED_TIME = "train_seconds"


def config_space(space: DesignSpace) -> dict[str, Any]:
    """syne-tune domains of the factors, bounded by the table's values: ``width`` and the
    branch sizes ``k_l`` log-scaled, bounded by the designs that have convolution l. A
    syne-tune space is flat: a searcher samples every ``k_l``, and one with ``l > L`` is
    ignored (:func:`~analysis.interop.space.nearest_index`); the table holds 0 there."""
    from syne_tune.config_space import choice, lograndint, randint

    out: dict[str, Any] = {}
    for c in space.factors.columns:
        col = space.factors[c]
        if c in space.categorical:
            out[c] = choice(sorted(col.unique()))
            continue
        log = c in LOG_FACTORS or is_k(c)
        col = col[col > 0] if is_k(c) else col
        out[c] = (lograndint if log else randint)(int(col.min()), int(col.max()))
    return out


def metadata(space: DesignSpace) -> dict[str, Any]:
    """What a reader needs besides the arrays: which design a row is, the table's seeds."""
    return {
        "source": f"igcbench {space.version}",
        "fidelity": space.fidelity,
        "dataset": space.dataset,
        "design_ids": list(space.design_ids),
        "fixed_factors": dict(space.fixed),
        "seeds": list(space.seeds),
        "left_out": list(space.left_out),
        "metric_default": "val_acc",
        "mode": "max",
        "metric_elapsed_time": ELAPSED_TIME,
        "resource_attr": FIDELITY,
        "invalid_configurations": "nearest design (analysis.interop.space.nearest_index)",
    }


def write_blackbox(space: DesignSpace, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Serialize ``space`` as a syne-tune tabular blackbox in ``out_dir``, whole or not at all.

    Raises:
        FileExistsError: ``out_dir`` exists and is not empty, without ``overwrite``.
        FileNotFoundError: its parent directory does not exist.
    """
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular, serialize
    from syne_tune.config_space import randint

    bb = BlackboxTabular(
        hyperparameters=space.factors,
        configuration_space=config_space(space),
        fidelity_space={FIDELITY: randint(1, int(space.epochs[-1]))},
        objectives_evaluations=space.values,
        fidelity_values=space.epochs,
        objectives_names=list(OBJECTIVES),
    )
    return replace_dir(
        out_dir, lambda tmp: serialize({space.dataset: bb}, tmp, metadata=metadata(space)),
        overwrite=overwrite,
    )  # fmt: skip


def load_blackbox(path: str | Path, task: str | None = None) -> Any:
    """The blackbox at ``path`` (syne-tune's ``deserialize``) as a :class:`NearestDesignBlackbox`,
    with ``metadata`` (the export's, :func:`metadata`) and ``design_ids`` (row i's design).

    Raises:
        ValueError: ``task`` is not one of the directory's (or omitted where it has several).
    """
    from syne_tune.blackbox_repository.blackbox_tabular import deserialize
    from syne_tune.blackbox_repository.serialize import deserialize_metadata

    tasks = deserialize(str(path))
    if task is None and len(tasks) == 1:
        task = next(iter(tasks))
    if task not in tasks:
        raise ValueError(f"task {task!r}: {path} has {', '.join(sorted(tasks))}")
    bb = nearest_design_blackbox(tasks[task])
    bb.metadata = deserialize_metadata(str(path))
    bb.design_ids = list(bb.metadata.get("design_ids", []))  # row i is design_ids[i]
    return bb


def nearest_design_blackbox(tabular: Any) -> Any:
    """``tabular`` (a ``BlackboxTabular``) answering every configuration of its space."""
    bb = NearestDesignBlackbox()(
        hyperparameters=tabular.hyperparameters,
        configuration_space=tabular.configuration_space,
        fidelity_space=tabular.fidelity_space,
        objectives_evaluations=tabular.objectives_evaluations,
        fidelity_values=tabular.fidelity_values,
        objectives_names=tabular.objectives_names,
    )
    return bb


@functools.cache
def NearestDesignBlackbox() -> type:  # noqa: N802 - returns the class; made on first use
    """The class (built on first use, so this module imports without syne-tune): a
    ``BlackboxTabular`` whose configurations off the table get their nearest design's
    record (``analysis.interop.space.nearest_index``), seed for seed."""
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular

    class _NearestDesign(BlackboxTabular):
        def nearest(self, configuration: dict[str, Any]) -> dict[str, Any]:
            """The table's configuration that answers ``configuration``."""
            row = self.hyperparameters.iloc[nearest_index(self.hyperparameters, configuration)]
            return {k: _plain(v) for k, v in row.items()}

        def _objective_function(self, configuration: Any, fidelity: Any = None,
                                seed: int | None = None) -> Any:  # fmt: skip
            if isinstance(configuration, dict):
                configuration = self.nearest(configuration)
            return super()._objective_function(configuration, fidelity=fidelity, seed=seed)

    _NearestDesign.__name__ = _NearestDesign.__qualname__ = "NearestDesignBlackbox"
    return _NearestDesign


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
