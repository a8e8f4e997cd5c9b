"""optuna-dashboard on a run's Optuna study, bound to loopback, stopped by Ctrl-C or SIGTERM.

The dashboard's own ``run_server`` takes a fixed port and reports nothing back; here its WSGI
app (``optuna_dashboard.wsgi``, public API) is served by wsgiref directly, so port 0 lets the
OS pick a free port atomically and the real URL can be printed.
"""

from __future__ import annotations

import signal
import threading
import wsgiref.simple_server
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

HOST = "127.0.0.1"


class DashboardInputError(ValueError):
    """No study to show (missing run directory or optuna.db, unusable storage URL)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the browser polls every few seconds; one line per request buries the URL


def storage_url(run_dir: str | Path, storage: str | None = None) -> str:
    """The storage URL to show: ``storage`` if given, else sqlite:///RUN_DIR/optuna.db.

    Raises:
        DashboardInputError: the run directory or its optuna.db is missing. (The file is
            checked first because opening a missing SQLite URL would create an empty one.)
    """
    if storage:
        return storage
    run = Path(run_dir)
    if not run.is_dir():
        raise DashboardInputError(f"run directory not found: {run}")
    db = run / "optuna.db"
    if not db.is_file():
        raise DashboardInputError(f"no Optuna study at {db} (give --storage URL)")
    return f"sqlite:///{db.resolve()}"


def make_server(storage: str, *, host: str = HOST, port: int = 0) -> WSGIServer:
    """A bound, not yet serving, optuna-dashboard server; port 0 picks a free port.

    Raises:
        DashboardInputError: the storage cannot be opened or the port cannot be bound.
    """
    from optuna_dashboard import wsgi

    try:
        app = wsgi(storage)
    except Exception as exc:  # any storage backend's error; the CLI makes it one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DashboardInputError(f"cannot open storage {storage}: {first}") from exc
    try:
        return wsgiref.simple_server.make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as exc:
        raise DashboardInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def serve_dashboard(
    storage: str,
    *,
    host: str = HOST,
    port: int = 0,
    announce: Callable[[str], Any] = print,
) -> None:
    """Serve optuna-dashboard until Ctrl-C or SIGTERM, then close the socket and return.

    Args:
        storage: Optuna storage URL (storage_url() gives a run's).
        host: address to bind; loopback by default, as the dashboard has no authentication.
        port: 0 picks a free one.
        announce: receives the URL once the socket is listening.
    """
    server = make_server(storage, host=host, port=port)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        # Not KeyboardInterrupt: wsgiref's handler swallows any exception raised while it
        # serves a request (its bare except), so a signal mid-request would be lost. shutdown()
        # ends the loop after the current request; it must run outside the serving thread.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce(f"http://{host}:{server.server_port}/")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
