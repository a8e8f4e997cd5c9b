"""`python -m analysis dashboard`: optuna-dashboard on a run's study, on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from analysis.__main__ import main
from analysis.report.dashboard import make_server, serve_dashboard

REPO = Path(__file__).resolve().parents[1]
STUDY = "igcbench-dashboard-test"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = tmp_path_factory.mktemp("run")
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{run / 'optuna.db'}")
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, deadline: float) -> bytes:
    """GET, retrying while the server starts (connection refused) until the deadline."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_cli_serves_the_study_and_stops_on_sigterm(run_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "analysis", "dashboard", str(run_dir), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        get(f"http://127.0.0.1:{port}/", deadline)
        studies = json.loads(get(f"http://127.0.0.1:{port}/api/studies", deadline))
        assert STUDY in json.dumps(studies)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out
    with pytest.raises(OSError):  # the socket is closed, not left behind
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_port_zero_picks_a_free_port_on_loopback(run_dir):
    server = make_server(f"sqlite:///{run_dir / 'optuna.db'}", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1" and port > 0
        body = get(f"http://127.0.0.1:{port}/api/studies", time.monotonic() + 20)
        assert STUDY in body.decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_ctrl_c_stops_the_server_and_restores_the_handler(run_dir):
    """SIGINT (Ctrl-C) in the serving process: the server shuts down, the call returns and
    the previous SIGINT handler is back."""
    before = signal.getsignal(signal.SIGINT)
    urls: list[str] = []
    ready = threading.Event()

    def client() -> None:
        ready.wait(20)
        body = get(f"{urls[0]}api/studies", time.monotonic() + 20)
        assert STUDY in body.decode()
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    start = time.monotonic()
    serve_dashboard(
        f"sqlite:///{run_dir / 'optuna.db'}", announce=lambda u: (urls.append(u), ready.set())
    )
    thread.join(5)
    assert time.monotonic() - start < 20 and urls[0].startswith("http://127.0.0.1:")
    assert signal.getsignal(signal.SIGINT) is before


def test_missing_study_is_exit_2_and_creates_no_database(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "optuna.db") in err
    assert not (tmp_path / "optuna.db").exists()
