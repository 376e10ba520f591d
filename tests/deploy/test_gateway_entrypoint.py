"""The gateway image's entrypoint, run for real: render, nginx, keys kept fresh, SIGTERM.

A fake auth service serves its JWKS, an OpenAPI document and an echo of what it
receives; nginx is the machine's (as in gateway/tests).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_support import DEPLOY, REPO

from gateway.settings import GatewaySettings
from gateway.tests.support import SigningKey, bearer, free_port, jwks

ENTRYPOINT = DEPLOY / "gateway" / "entrypoint.py"
OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "auth", "version": "1"},
    "paths": {"/api/v1/auth/me": {"get": {"responses": {"200": {"description": "me"}}}}},
}

pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists())
    or not GatewaySettings().njs_module.exists(),
    reason="nginx with the njs module is missing (apt-get install nginx libnginx-mod-http-js)",
)


class FakeAuth:
    """JWKS, /openapi.json, and an echo of any other request's identity headers."""

    def __init__(self, port: int) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/api/v1/auth/.well-known/jwks.json":
                    body = owner.jwks
                elif self.path == "/openapi.json":
                    body = OPENAPI
                else:
                    body = {"path": self.path, "user_id": self.headers.get("X-User-Id")}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Entrypoint:
    def __init__(self, workdir: Path, auth_port: int, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        environ = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "GATEWAY_WORKDIR": str(workdir),
            "GATEWAY_LISTEN_PORT": str(self.port),
            "GATEWAY_UPSTREAMS": f"auth=127.0.0.1:{auth_port}",
            "GATEWAY_WORKER_PROCESSES": "1",
            "GATEWAY_KEYS_REFRESH_SECONDS": "0.3",
            "GATEWAY_OPENAPI_REFRESH_SECONDS": "0.3",
            **env,
        }
        if os.geteuid() == 0:  # nginx's workers would otherwise be nobody (see gateway/tests)
            environ["GATEWAY_WORKER_USER"] = "root"
        self.process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT)],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"entrypoint exited: {self.process.stderr.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the gateway did not answer /healthz")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


def eventually(check, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.fixture
def fake_auth() -> Iterator[FakeAuth]:
    auth = FakeAuth(free_port())
    yield auth
    auth.stop()


def test_renders_runs_nginx_and_follows_key_rotation(tmp_path, fake_auth):
    first, second = SigningKey.es256(), SigningKey.es256()
    fake_auth.jwks = jwks(first)
    gateway = Entrypoint(tmp_path / "gw", fake_auth.server.server_port)
    try:
        gateway.wait_healthy()
        me = httpx.get(f"{gateway.url}/api/v1/auth/me", headers=bearer(first.token(sub="u-1")))
        assert me.status_code == 200 and me.json()["user_id"] == "u-1"
        assert httpx.get(f"{gateway.url}/api/v1/auth/me").status_code == 401
        docs = httpx.get(f"{gateway.url}/api/v1/openapi.json").json()
        assert "/api/v1/auth/me" in docs["paths"]

        # Rotation: auth publishes the new key; the keys file follows without a reload.
        fake_auth.jwks = jwks(first, second)
        token = second.token(sub="u-2")
        accepted = eventually(
            lambda: (
                httpx.get(f"{gateway.url}/api/v1/auth/me", headers=bearer(token)).status_code == 200
            )
        )
        assert accepted, "a token of the newly published key is still refused"
    finally:
        assert gateway.stop() == 0


def test_starts_without_auth_and_picks_up_the_keys_later(tmp_path):
    auth_port = free_port()
    gateway = Entrypoint(tmp_path / "gw", auth_port, GATEWAY_STARTUP_WAIT_SECONDS="0")
    auth = None
    try:
        gateway.wait_healthy()
        key = SigningKey.es256()
        auth = FakeAuth(auth_port)
        auth.jwks = jwks(key)
        token = key.token()
        accepted = eventually(
            lambda: (
                httpx.get(f"{gateway.url}/api/v1/auth/me", headers=bearer(token)).status_code == 200
            )
        )
        assert accepted, "the keys never arrived"
    finally:
        assert gateway.stop() == 0
        if auth is not None:
            auth.stop()
