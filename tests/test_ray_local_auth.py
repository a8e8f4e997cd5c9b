"""A local sweep's Ray refuses clients without its token (its servers listen on every
interface in Ray 2.60, so the token is what keeps other machines out: docs/studies.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Starts Ray exactly as a local sweep does (studies.sweep.init_ray(None)), reports where it
# listens, and keeps it up until a line arrives on stdin.
DRIVER = """
import os, sys
import ray
from studies.sweep import AUTH_TOKEN_FILE, init_ray
assert init_ray(None)
node = ray._private.worker.global_worker.node
print(ray.get_runtime_context().gcs_address, node.node_ip_address, node.runtime_env_agent_port,
      os.environ.get("RAY_AUTH_MODE"), oct(AUTH_TOKEN_FILE.stat().st_mode & 0o777), flush=True)
sys.stdin.readline()
ray.shutdown()
"""

# A GCS client, as `ray.init(address=...)` and `ray status` make one; prints the outcome.
CLIENT = """
import sys
from ray._raylet import GcsClient
try:
    client = GcsClient(address=sys.argv[1])
    keys = client.internal_kv_keys(b"", namespace=None, timeout=10)
    print("CONNECTED", len(keys))
except Exception as e:
    print("REFUSED", type(e).__name__, " ".join(str(e).split())[:200])
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    return {**env, "HOME": str(home), "PYTHONPATH": str(REPO), **extra}


def _client(gcs: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", CLIENT, gcs], env=env, capture_output=True,
                          text=True, timeout=120)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]


def _http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_local_sweep_ray_requires_its_token_even_when_the_user_disabled_it(tmp_path):
    home, stranger = tmp_path / "home", tmp_path / "stranger"
    home.mkdir()
    stranger.mkdir()
    # RAY_AUTH_MODE=disabled is what a user could have exported: a local sweep overrides it.
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, text=True,
                              env=_env(home, RAY_AUTH_MODE="disabled"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = driver.stdout.readline().split()
        assert len(line) == 5, f"driver failed: {line}"
        gcs, node_ip, agent_port, mode, token_mode = line
        assert mode == "token" and token_mode == "0o600"
        token = (home / ".ray" / "auth_token").read_text().strip()
        assert len(token) >= 32

        # Another user or machine: no token at all, or a wrong one.
        no_token = _client(gcs, _env(stranger))
        assert no_token.startswith("REFUSED AuthenticationError"), no_token
        assert "InvalidAuthToken" in no_token
        wrong = _client(gcs, _env(stranger, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64))
        assert wrong.startswith("REFUSED AuthenticationError"), wrong
        # The same client with the sweep's token gets in: the refusals above are the token's.
        right = _client(gcs, _env(stranger, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token))
        assert right.startswith("CONNECTED"), right

        # The runtime-env agent's HTTP server (on the machine's address) checks it too.
        url = f"http://{node_ip}:{agent_port}/"
        assert _http_status(url, None) == 401  # no token: unauthorised
        assert _http_status(url, "0" * 64) == 403  # a wrong one: forbidden
        assert _http_status(url, token) not in (401, 403)
    finally:
        if driver.poll() is None:
            driver.communicate("\n", timeout=60)
    assert driver.returncode == 0


@pytest.mark.parametrize("user_mode", ["disabled", None])
def test_address_clusters_keep_their_auth_settings(user_mode, monkeypatch):
    from studies import sweep

    calls = []
    monkeypatch.setattr(sweep.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(sweep.ray, "init", lambda **kw: calls.append(
        (kw.get("address"), os.environ.get("RAY_AUTH_MODE"))))
    if user_mode:
        monkeypatch.setenv("RAY_AUTH_MODE", user_mode)
    else:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert sweep.init_ray("10.0.0.1:6379")
    assert calls == [("10.0.0.1:6379", user_mode)]  # passed to Ray as the user set it
