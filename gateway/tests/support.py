"""Test support: a real nginx running the rendered gateway, an echo upstream, tokens.

The echo upstream is a threaded http.server in the test process: it answers every
request with JSON describing what it received (method, path, headers) and keeps a
log, so a test can tell exactly what a service would have seen — or that nothing
reached it at all.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.render import GatewaySettings, merge_openapi, nginx_command

ISSUER = "unpuzzle-auth"
AUDIENCE = "unpuzzle-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------- upstream


class EchoUpstream:
    """A stand-in for every service: records requests and echoes them back as JSON."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> EchoUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def paths_received(self) -> list[str]:
        with self._lock:
            return [request["path"] for request in self.requests]

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # nginx keeps upstream connections alive

            def _answer(self) -> None:
                body = self._read_body()
                if self.path.startswith("/api/v1/analytics/slow"):
                    time.sleep(2)
                received = {
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k.lower(), v] for k, v in self.headers.items()],
                    "body_bytes": len(body),
                }
                upstream._record(received)
                payload = json.dumps(received).encode()
                if self.path.startswith("/api/v1/ai/over-limit"):
                    # A service's own 429, as ai answers when the daily quota is spent.
                    self.send_response(429)
                    self.send_header("Retry-After", "3600")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                # Headers the gateway owns: it must not pass these copies on.
                self.send_header("X-Request-ID", "from-upstream")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                        if size == 0:
                            return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    """All values of header ``name`` as the upstream received them."""
    return [value for key, value in echo["headers"] if key == name.lower()]


# ------------------------------------------------------------------------- tokens


@dataclass
class SigningKey:
    """A private key of the auth service, able to mint access tokens."""

    kid: str
    alg: str
    private_key: Any = field(repr=False)

    @classmethod
    def es256(cls, kid: str | None = None) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(kid or f"es-{uuid.uuid4().hex[:8]}", "ES256", key)

    @classmethod
    def rs256(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or f"rs-{uuid.uuid4().hex[:8]}", "RS256", key)

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def token(self, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        return pyjwt.encode(
            claims(**overrides),
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


def claims(**overrides: Any) -> dict[str, Any]:
    """Access-token claims as the auth service issues them; ``None`` drops a claim."""
    now = int(time.time())
    values = {
        "sub": str(uuid.uuid4()),
        "email": "ada@example.com",
        "roles": ["student"],
        "iat": now,
        "exp": now + 300,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------ gateway


class Gateway:
    """A running nginx instance of the rendered gateway."""

    def __init__(self, workdir: Path, settings: GatewaySettings) -> None:
        self.workdir = workdir
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.listen_port}"
        self.keys_file = workdir / "jwt-keys.json"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Gateway:
        self._process = subprocess.Popen(
            nginx_command(self.workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.settings.listen_port), 0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nginx did not listen: {self.error_log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text() if path.exists() else ""

    def access_log_entry(self, request_id: str, timeout: float = 2.0) -> dict[str, Any]:
        """The access-log line of a request (nginx writes it just after responding)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = (self.workdir / "access.log").read_text().splitlines()
            for entry in map(json.loads, lines):
                if entry["request_id"] == request_id:
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no access-log entry for request {request_id}")
            time.sleep(0.02)


def gateway_settings(workdir: Path, upstreams: dict[str, str], **overrides: Any) -> GatewaySettings:
    """Settings for a test instance: a free port, one worker, workers able to read workdir."""
    values: dict[str, Any] = {
        "listen_port": free_port(),
        "upstreams": upstreams,
        "workdir": workdir,
        "worker_processes": "1",
        # Started as root, nginx would run its workers as nobody, who cannot read the
        # pytest temp dir (keys file, openapi.json).
        "worker_user": getpass.getuser() if os.geteuid() == 0 else None,
        "error_log_level": "info",
    }
    values.update(overrides)
    return GatewaySettings(**values)


SAMPLE_OPENAPI = merge_openapi(
    {
        "auth": {
            "openapi": "3.1.0",
            "info": {"title": "auth", "version": "1"},
            "paths": {
                "/api/v1/auth/signin": {"post": {"operationId": "signin", "responses": {}}},
                "/metrics": {"get": {"operationId": "metrics", "responses": {}}},
            },
        }
    }
)
