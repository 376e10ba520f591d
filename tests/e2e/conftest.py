"""A whole stack for the journeys: ``python -m devstack up`` on a free port.

The stack gets its own database (``unpuzzle_e2e_<random>``, dropped at the end), its
own event prefix (its streams are deleted at the end), its own Redis database and dev
dir, and runs its services on free ports: it disturbs neither a developer's
``make up`` nor another test run on the same machine. Everything is reached through
the gateway URL, as a client would.

Environment (same defaults as the other suites, see unpuzzle_common.testing):
``UNPUZZLE_TEST_ADMIN_URL``, ``UNPUZZLE_TEST_NATS_URL``, ``UNPUZZLE_E2E_REDIS_URL``
(default redis://127.0.0.1:6379/14), ``UNPUZZLE_E2E_DATABASE`` (a fixed database name,
kept after the run for inspection).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
PASSWORD = "correct horse battery staple"

ADMIN_URL = os.environ.get(
    "UNPUZZLE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("UNPUZZLE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("UNPUZZLE_E2E_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass(frozen=True)
class Stack:
    url: str
    prefix: str
    nats_url: str
    admin_email: str
    admin_password: str
    dev_dir: Path
    database: str
    #: The environment devstack runs with (for further ``python -m devstack`` commands).
    env: dict[str, str]

    def devstack(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run another devstack command against this stack's database and dev dir."""
        command = [sys.executable, "-m", "devstack", *args]
        command += ["--database", self.database, "--dev-dir", str(self.dev_dir)]
        command += ["--prefix", self.prefix]
        return subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-6000:]


def _ready(url: str) -> bool:
    try:
        with httpx.Client(base_url=url, timeout=2) as client:
            return (
                client.get("/healthz").status_code == 200
                and client.get("/api/v1/auth/.well-known/jwks.json").status_code == 200
            )
    except httpx.HTTPError:
        return False


def _drop_database(database: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


async def _delete_streams(prefix: str) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name.lower().startswith(prefix.lower() + "_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dev_dir = tmp_path_factory.mktemp("devstack")
    port = _free_port()
    run_id = uuid.uuid4().hex[:10]
    prefix = f"e2e{run_id}"
    database = os.environ.get("UNPUZZLE_E2E_DATABASE") or f"unpuzzle_e2e_{run_id}"
    admin_email = f"admin-{prefix}@example.com"
    admin_password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "ADMIN_EMAIL": admin_email,
        "ADMIN_PASSWORD": admin_password,
        "UNPUZZLE_ADMIN_DATABASE_URL": ADMIN_URL,
        "UNPUZZLE_NATS_URL": NATS_URL,
        "UNPUZZLE_REDIS_URL": REDIS_URL,
        # Cheap password hashing keeps the journeys fast (bench/ measures the real cost).
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST": "8192",
        "AUTH_ARGON2_PARALLELISM": "1",
        # The suite signs up a handful of accounts from one address within seconds.
        "GATEWAY_RATE_LIMIT_STRICT_BURST": "30",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "devstack", "up", "--port", str(port)]
    command += ["--database", database, "--prefix", prefix, "--dev-dir", str(dev_dir)]
    command += ["--free-ports", "--fresh", "--keys-every", "1"]
    out_path = dev_dir / "devstack.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"devstack exited with {process.returncode}:\n{_output(out_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"stack not ready after {START_TIMEOUT:.0f}s:\n{_output(out_path)}")
            time.sleep(0.2)
        yield Stack(url, prefix, NATS_URL, admin_email, admin_password, dev_dir, database, env)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        asyncio.run(_delete_streams(prefix))
        if not os.environ.get("UNPUZZLE_E2E_DATABASE"):
            _drop_database(database)
    assert code == 0, f"devstack did not stop cleanly ({code}):\n{_output(out_path)}"


class Api:
    """A client of the gateway URL with the few helpers the journeys share."""

    password = PASSWORD

    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    @staticmethod
    def bearer(access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}

    @staticmethod
    def new_email(label: str = "user") -> str:
        return f"{label}-{uuid.uuid4().hex[:12]}@example.com"

    def signup(self, email: str | None = None, **extra: str) -> dict:
        """Sign a new account up; returns the 201 body (user and tokens)."""
        body = {
            "email": email or self.new_email(),
            "password": PASSWORD,
            "full_name": "Ada Lovelace",
            **extra,
        }
        response = self.http.post("/api/v1/auth/signup", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def signin(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.http.post("/api/v1/auth/signin", json={"email": email, "password": password})

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    def sessions(self, access_token: str) -> list[dict]:
        response = self.http.get("/api/v1/auth/sessions", headers=self.bearer(access_token))
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield Api(client)


def assert_problem(response: httpx.Response, status: int) -> dict:
    """An RFC 9457 problem document with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def problem():
    return assert_problem
