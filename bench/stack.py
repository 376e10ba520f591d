"""The stack under test: a dev stack started for the run, or one already running.

With ``BENCH_GATEWAY_URL`` and ``BENCH_AUTH_URL`` set, those are used as they are.
Otherwise ``python -m devstack up --port P --database D --prefix bench<hex> --dev-dir
<tmp>`` is started as a child (its output in ``<tmp>/devstack.log``) and stopped with
SIGINT at the end, like Ctrl-C.

The gateway's rate limits are what make it safe, and they would turn a load test of
``/me`` into a test of its 429 page: the stack started here gets limits far above
what the load reaches (``GATEWAY_RATE_LIMIT_*``). The ``limit_req`` bookkeeping
still runs on every request, so its cost is part of what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.procmem import descendants
from bench.progress import log, warn

REPO = Path(__file__).resolve().parent.parent
AUTH_PORT = 8101

#: Rate limits handed to the stack the benchmark starts (nginx rate syntax).
UNLIMITED_GATEWAY_ENV = {
    "GATEWAY_RATE_LIMIT_ADDRESS": "100000r/s",
    "GATEWAY_RATE_LIMIT_ADDRESS_BURST": "100000",
    "GATEWAY_RATE_LIMIT_USER": "100000r/s",
    "GATEWAY_RATE_LIMIT_USER_BURST": "100000",
}


def service_env_for(prefix: str) -> dict[str, str]:
    """Service settings handed to the stack the benchmark starts.

    - Redis key prefixes of its own (courses' cache, ai's usage counters): a stack
      beside a developer's shares their Redis, and the course cache must not serve the
      other stack's catalog. They are removed when the stack stops.
    - The AI free plan's daily limit lifted: the tutor phase sends hundreds of messages
      as one student (the default, 20 a day, would answer 429).
    """
    return {
        "COURSES_CACHE_PREFIX": f"{prefix}-courses",
        "AI_REDIS_PREFIX": f"{prefix}-ai",
        "AI_FREE_DAILY_LIMIT": "1000000",
    }


class StackError(RuntimeError):
    """The stack could not be started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    gateway_url: str
    auth_url: str
    #: The dev stack process when this run started it.
    process: subprocess.Popen[bytes] | None = None
    dev_dir: Path | None = None
    log_path: Path | None = None
    database: str | None = None
    prefix: str | None = None
    children_seen: list[int] = field(default_factory=list)
    #: Environment given to the stack on top of ours (limits, Redis prefixes).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Service and sidecar name -> port, from devstack's summary line.
    ports: dict[str, int] = field(default_factory=dict)
    #: ``devstack up --replicas`` given (e.g. "courses=2"); empty: one API each.
    replicas: str = ""
    #: Courses seeded into its database so far (bench.stackenv.seed_catalog).
    seeded: dict[str, int] = field(default_factory=dict)

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def gateway_port(self) -> int | None:
        return urlsplit(self.gateway_url).port

    @property
    def auth_port(self) -> int | None:
        return urlsplit(self.auth_url).port

    def describe(self) -> str:
        if self.started_here:
            return (
                f"devstack started by the benchmark (database {self.database}, "
                f"events prefix {self.prefix}"
                + (f", API replicas {self.replicas}" if self.replicas else "")
                + ")"
            )
        return "already running stack (BENCH_GATEWAY_URL, BENCH_AUTH_URL)"

    def log_tail(self, lines: int = 25) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, grace: float = 40.0) -> None:
        """SIGINT the dev stack (it stops its children), then insist if it lingers."""
        proc = self.process
        if proc is None:
            return
        self.children_seen = sorted(set(self.children_seen) | set(descendants(proc.pid)))
        if proc.poll() is None:
            log("stack", "stopping the dev stack (SIGINT)", pid=proc.pid)
            proc.send_signal(signal.SIGINT)
            if not await _wait_exit(proc, grace):
                warn("stack", "dev stack still running; SIGTERM", pid=proc.pid)
                proc.terminate()
                if not await _wait_exit(proc, 10):
                    proc.kill()
                    await _wait_exit(proc, 5)
        # Children it started that outlived it (it should never happen) are ours too.
        for pid in self.children_seen:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 0)
                warn("stack", "a dev stack child outlived it; SIGTERM", pid=pid)
                os.kill(pid, signal.SIGTERM)
        log("stack", "dev stack stopped", returncode=proc.returncode)
        if self.prefix:
            await _delete_streams(self.prefix)
            await _delete_redis_keys(self.prefix)
        if self.dev_dir is not None and proc.returncode in (0, 130, -2):
            shutil.rmtree(self.dev_dir, ignore_errors=True)
        elif self.dev_dir is not None:
            warn("stack", "kept the dev dir for its logs", dev_dir=str(self.dev_dir))


async def _delete_streams(prefix: str) -> None:
    """Remove the JetStream streams the bench stack created under its own prefix."""
    from unpuzzle_common.events.bus import connect
    from unpuzzle_common.testing import delete_streams_with_prefix

    url = os.environ.get("UNPUZZLE_NATS_URL", "nats://127.0.0.1:4222")
    try:
        nc = await asyncio.wait_for(connect(url, "bench-cleanup"), 5)
    except (TimeoutError, OSError) as exc:
        warn("stack", "could not remove the bench streams", error=repr(exc))
        return
    try:
        await delete_streams_with_prefix(nc.jetstream(), prefix)
        log("stack", "removed the bench streams", prefix=prefix)
    finally:
        await nc.close()


async def _delete_redis_keys(prefix: str) -> None:
    """Remove the Redis keys written under the bench stack's own prefixes."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = os.environ.get("UNPUZZLE_REDIS_URL", "redis://127.0.0.1:6379/0")
    redis = Redis.from_url(url, socket_timeout=5)
    removed = 0
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}-*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += await redis.unlink(*batch)
                batch = []
        if batch:
            removed += await redis.unlink(*batch)
        log("stack", "removed the bench Redis keys", prefix=f"{prefix}-*", keys=removed)
    except (RedisError, OSError) as exc:
        warn("stack", "could not remove the bench Redis keys", error=repr(exc))
    finally:
        await redis.aclose()


async def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        await asyncio.sleep(0.1)
    return proc.poll() is not None


def external_stack() -> Stack | None:
    gateway, auth = os.environ.get("BENCH_GATEWAY_URL"), os.environ.get("BENCH_AUTH_URL")
    if gateway and auth:
        return Stack(gateway_url=gateway.rstrip("/"), auth_url=auth.rstrip("/"))
    if gateway or auth:
        raise StackError("set both BENCH_GATEWAY_URL and BENCH_AUTH_URL, or neither")
    return None


async def start_devstack(
    database: str, *, ready_within: float = 180.0, replicas: str = ""
) -> Stack:
    """Start ``python -m devstack up`` on a free gateway port; return when both answer."""
    if not (REPO / "devstack" / "__main__.py").exists():
        raise StackError("devstack/__main__.py is missing: the dev stack is not there yet")
    supported = devstack_options()
    free_ports = port_in_use(AUTH_PORT)
    if free_ports and "--free-ports" not in supported:
        raise StackError(
            f"port {AUTH_PORT} (auth) is taken: another stack is running. Stop it, or "
            "point BENCH_GATEWAY_URL and BENCH_AUTH_URL at it"
        )
    port = free_port()
    prefix = "bench" + secrets.token_hex(4)
    dev_dir = Path(tempfile.mkdtemp(prefix="unpuzzle-bench-"))
    log_path = dev_dir / "devstack.log"
    env = dict(os.environ)
    for name, value in UNLIMITED_GATEWAY_ENV.items():
        env.setdefault(name, value)
    extra = service_env_for(prefix)
    env.update(extra)
    args = [
        sys.executable,
        "-m",
        "devstack",
        "up",
        "--port",
        str(port),
        "--database",
        database,
        "--prefix",
        prefix,
        "--dev-dir",
        str(dev_dir),
    ]
    # A new dev dir has new secrets: the database's stored signing keys, encrypted
    # with the previous run's secret, must go.
    if "--fresh" in supported:
        args.append("--fresh")
    if free_ports:
        log("stack", f"port {AUTH_PORT} is taken (another stack): services on free ports")
        args.append("--free-ports")
    if replicas:
        args += ["--replicas", replicas]
    log("stack", "starting the dev stack", command=" ".join(args[1:]), log=str(log_path))
    with log_path.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited for below
            args,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(
        gateway_url=f"http://127.0.0.1:{port}",
        auth_url=f"http://127.0.0.1:{AUTH_PORT}" if not free_ports else "",
        process=proc,
        dev_dir=dev_dir,
        log_path=log_path,
        database=database,
        prefix=prefix,
        extra_env=extra,
        replicas=replicas,
    )
    try:
        await wait_ready(stack, ready_within)
        stack.ports = _ports(stack)
    except BaseException:
        await stack.stop()
        raise
    stack.children_seen = descendants(proc.pid)
    return stack


def _saved_ports(stack: Stack) -> dict[str, Any]:
    """The ports devstack recorded for this run (``ports.json`` in its dev dir; written
    before it starts anything): gateway, services, sidecars, replicas."""
    if stack.dev_dir is None:
        return {}
    try:
        return json.loads((stack.dev_dir / "ports.json").read_text())
    except (OSError, ValueError):
        return {}


def _ports(stack: Stack) -> dict[str, int]:
    """Service and sidecar ports by name; a service's extra API processes (``--replicas``)
    as ``"courses-2"``, ``"courses-3"``..."""
    saved = _saved_ports(stack)
    if not saved:
        warn("stack", "no ports.json in the dev dir: service ports unknown")
        return {}
    ports = {name: int(port) for name, port in {**saved["services"], **saved["sidecars"]}.items()}
    for name, extra in saved.get("replicas", {}).items():
        ports.update({f"{name}-{n}": int(port) for n, port in enumerate(extra, start=2)})
    return ports


def devstack_options() -> set[str]:
    """The options ``devstack up`` knows (it is younger than this benchmark)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "devstack", "up", "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


def _auth_url(stack: Stack) -> str:
    """With --free-ports, auth's port as devstack recorded it."""
    port = _saved_ports(stack).get("services", {}).get("auth")
    return f"http://127.0.0.1:{port}" if port else ""


async def wait_ready(stack: Stack, within: float) -> None:
    """Until the gateway's /healthz and auth's /readyz answer 200 (or the stack died)."""
    deadline = time.monotonic() + within
    last = time.monotonic()
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if stack.process is not None and stack.process.poll() is not None:
                raise StackError(
                    f"the dev stack exited with {stack.process.returncode}:\n{stack.log_tail()}"
                )
            if not stack.auth_url:
                stack.auth_url = _auth_url(stack)
            try:
                if stack.auth_url:
                    gateway = await client.get(f"{stack.gateway_url}/healthz")
                    auth = await client.get(f"{stack.auth_url}/readyz")
                    if gateway.status_code == 200 and auth.status_code == 200:
                        log("stack", "stack ready", gateway=stack.gateway_url, auth=stack.auth_url)
                        return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the stack was not ready after {within:.0f}s\n{stack.log_tail()}")
            if time.monotonic() - last > 10:
                last = time.monotonic()
                log("stack", "waiting for the stack")
            await asyncio.sleep(0.25)
