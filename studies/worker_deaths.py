"""A trial whose worker Ray kills (its memory monitor, a node lost) is that trial's error.

Ray 2.60's actor manager, which Tune's loop runs on, knows two failures of an actor task:
the actor died (``RayActorError``) or the task raised (``RayTaskError``). When Ray's memory
monitor kills a running trial's worker because the node runs out of memory, the task fails
with ``ray.exceptions.OutOfMemoryError`` (likewise ``WorkerCrashedError``,
``NodeDiedError``), which is neither: the manager raises ``RuntimeError: Caught unexpected
exception`` out of ``tuner.fit()``, and the whole sweep dies with its other trials.
:func:`tolerate_killed_workers` hands such a failure to Tune as what it is, the death of
that trial's actor, so Tune reports the trial as errored and goes on.

The ledger turns an out-of-memory kill into an ``interrupted`` trial (the same command runs
it again: the kill may have been another process's doing, on a shared machine) and, when
the same trial was killed so before, into a ``failed`` record with the reason (see
:func:`memory_kill_reason`), so a design too big for the machine is not retried forever.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ray.exceptions import RayActorError, RayError, RayTaskError

from studies.ledger import OOM_KILLED  # the reason's prefix, which the ledger acts on

_RAY_OOM = "killed due to the node running low on memory"  # Ray's own message says this


class WorkerKilled(RayActorError):
    """The trial's worker was killed by Ray (not by an exception of the trial)."""


def memory_kill_reason(text: str) -> str | None:
    """The reason of a trial whose error ``text`` says Ray's memory monitor killed its
    worker (``out of memory: killed by Ray's memory monitor (22.46GB used / 23.54GB
    limit)``), else None.

    Example:
        >>> memory_kill_reason("1 worker(s) were killed due to the node running low on "
        ...                    "memory. Memory on the node (IP: 10.0.0.1, ID: ab) was 22.46GB "
        ...                    "used / 23.54GB limit (0.95)")
        "out of memory: killed by Ray's memory monitor (node at 22.46GB used / 23.54GB limit)"
        >>> memory_kill_reason("error: ValueError: bad") is None
        True
    """
    if OOM_KILLED not in text and _RAY_OOM not in text:
        return None
    usage = re.search(r"was ([\d.]+\s*GB) used / ([\d.]+\s*GB) limit", text)
    where = f" (node at {usage.group(1)} used / {usage.group(2)} limit)" if usage else ""
    return OOM_KILLED + where


@contextlib.contextmanager
def tolerate_killed_workers() -> Iterator[None]:
    """Inside: an actor task that fails because Ray killed its worker fails its trial (as
    an actor death), instead of raising out of ``tuner.fit()``."""
    try:
        from ray.air.execution._internal.actor_manager import RayActorManager
    except ImportError:  # another Ray layout: nothing to patch (its behaviour may differ)
        yield
        return
    original = RayActorManager._actor_task_failed

    def _actor_task_failed(self: Any, tracked_actor_task: Any, exception: Exception) -> None:
        if isinstance(exception, RayError) and not isinstance(
                exception, (RayActorError, RayTaskError)):
            text = " ".join(str(exception).split())
            reason = memory_kill_reason(text) or f"worker killed: {type(exception).__name__}"
            exception = WorkerKilled(error_msg=f"{reason}: {text[:300]}")
        original(self, tracked_actor_task, exception)

    RayActorManager._actor_task_failed = _actor_task_failed
    try:
        yield
    finally:
        RayActorManager._actor_task_failed = original
