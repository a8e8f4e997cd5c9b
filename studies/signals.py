"""Ctrl-C and SIGTERM during a sweep: the first ends it cleanly, a second at once.

The first SIGINT or SIGTERM asks Ray Tune to end its loop (as Tune's own Ctrl-C handler
would: Tune stops its trials and returns), so the driver records what finished, prints the
summary and shuts its local Ray down; the exit status is then 130 (SIGINT) or 143
(SIGTERM). A second signal raises ``KeyboardInterrupt`` at once, except inside
:meth:`Interrupts.critical` (a record and its Optuna trial being written), which it
leaves first: no record is lost or half-told. Interrupted trials keep their per-epoch
checkpoints, so the same command resumes them.

Tune's own SIGINT handler is switched off (``TUNE_DISABLE_SIGINT_HANDLER``) while ours is
installed: Tune's would stop at the first Ctrl-C without telling us, and SIGTERM, which
Ray's ``ray.init`` maps to ``sys.exit`` (or to killing the node's processes), would leave
no summary and Ray's processes dying loudly. Tune's SIGUSR1 handler, installed while its
loop runs, is how the first signal reaches it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as shells do
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupts:
    """The signals a sweep received, and the handler that reacts to them."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._critical = 0
        self._pending = False

    @property
    def interrupted(self) -> bool:
        return bool(self.received)

    @property
    def exit_status(self) -> int | None:
        """130 after Ctrl-C, 143 after SIGTERM (the first signal decides), else None."""
        return EXIT_STATUS[self.received[0]] if self.received else None

    def describe(self) -> str:
        return NAMES[self.received[0]] if self.received else ""

    def install(self) -> None:
        """Handle SIGINT and SIGTERM here (again after ``ray.init``, which takes SIGTERM)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in EXIT_STATUS:
            signal.signal(sig, self._handle)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Our handlers inside, the previous ones restored after. Outside the main thread
        (a sweep run from a worker thread) Python allows no handlers: nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (*EXIT_STATUS, signal.SIGUSR1)}
        # Until Tune's loop installs its SIGUSR1 handler (and after ours are removed) the
        # signal is ignored: a handler left by an earlier Tune run must not be triggered.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.install()
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            if saved_env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A second signal waits until this block is done (then raises KeyboardInterrupt)."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
            if not self._critical and self._pending:
                self._pending = False
                raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            # Tune's loop is running when its SIGUSR1 handler is installed (a function);
            # outside it the sweep checks ``interrupted`` before starting Tune.
            if callable(signal.getsignal(signal.SIGUSR1)):
                os.kill(os.getpid(), signal.SIGUSR1)
            return
        if self._critical:
            self._pending = True
            return
        raise KeyboardInterrupt
