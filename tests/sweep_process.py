"""A sweep driver (``studies/run.py``) as a real subprocess, for the signal and kill tests.

It runs in a session of its own (as a command typed in a terminal: its own process group),
so a test can signal the group as a terminal's Ctrl-C or a scheduler's SIGTERM would, and
its stderr (the progress lines) is read as it comes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Driver:
    """``python studies/run.py ARGS`` with its progress lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "studies/run.py", *args], cwd=REPO,
            env={**os.environ, **(env or {})}, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ray_pids: list[int] = []

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 180) -> str:
        """The first progress line that satisfies ``predicate`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in list(self.lines) if predicate(line)), None)
            if found is not None:
                return found
            if self.proc.poll() is not None:
                raise AssertionError("the driver ended first:\n" + "".join(self.lines[-20:]))
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing matched within {timeout} s:\n"
                                     + "".join(self.lines[-20:]))
            time.sleep(0.1)

    def note_ray(self) -> None:
        """Remember the processes below the driver (its Ray: GCS, raylet, workers)."""
        self.ray_pids = descendants(self.proc.pid)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout: float = 180) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) once the driver ends."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        status = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return status, out, "".join(self.lines)

    def kill(self) -> None:
        """kill -9 of the driver and everything below it (Ray's workers run in sessions of
        their own, so the group is not enough)."""
        doomed = descendants(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Ray's GCS, raylet and workers below the driver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.append(pid)
    return left
