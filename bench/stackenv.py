"""What the service phases need from the stack the benchmark started.

- :func:`service_env`: a service's settings (``<NAME>_*``), as ``python -m devstack env
  NAME --database D --dev-dir DIR --prefix P`` prints them, with the ports this stack
  really uses (``env`` prints the registry's; the stack may run on free ports).
- :func:`seed_catalog`: ``python -m courses_service seed`` into the stack's database
  (idempotent: a larger ``--courses`` adds the difference).
- :func:`gather_limited`: the set-up calls a phase makes through the stack, a few at a
  time.
- :func:`settle`: wait until the events the stack's services produced are consumed
  (outboxes published, every durable consumer on the stack's streams caught up), so
  background work (indexing, read models) does not run during a measurement.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from bench.progress import log, warn
from bench.stack import REPO, Stack, StackError

#: The default gateway port ``devstack env`` writes into URLs (no --port there).
_DEFAULT_GATEWAY_PORT = 8080


def require_own_stack(stack: Stack, phase: str) -> None:
    if not stack.started_here or not stack.dev_dir or not stack.database or not stack.prefix:
        raise StackError(
            f"the {phase} phase needs the stack the benchmark starts (it seeds data and "
            "reads the stack's secrets): unset BENCH_GATEWAY_URL and BENCH_AUTH_URL"
        )
    if not stack.ports:
        raise StackError("the stack's service ports are unknown (no devstack summary line)")


def _registry_ports() -> dict[int, str]:
    """Registry port -> service or sidecar name (what ``devstack env`` writes)."""
    from devstack.registry import SERVICES

    ports: dict[int, str] = {}
    for service in SERVICES:
        ports[service.port] = service.name
        for sidecar in service.sidecars:
            ports[sidecar.port] = sidecar.name
    return ports


def _fix_url(value: str, stack: Stack, by_port: dict[int, str]) -> str:
    """A localhost URL on a registry port, moved to the port this stack uses."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value
    if parts.scheme not in ("http", "https") or parts.hostname not in ("127.0.0.1", "localhost"):
        return value
    if port == _DEFAULT_GATEWAY_PORT and stack.gateway_port:
        new = stack.gateway_port
    elif port in by_port and by_port[port] in stack.ports:
        new = stack.ports[by_port[port]]
    else:
        return value
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{new}"))


_EXPORT = re.compile(r"^export ([A-Z0-9_]+)=(.*)$")


def service_env(stack: Stack, name: str) -> dict[str, str]:
    """``<NAME>_*`` settings of one service of this stack (database URL, secrets, ports)."""
    require_own_stack(stack, name)
    env = {**os.environ, **stack.extra_env}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "env",
            name,
            "--database",
            str(stack.database),
            "--dev-dir",
            str(stack.dev_dir),
            "--prefix",
            str(stack.prefix),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"devstack env {name} failed: {done.stderr.strip()[-400:]}")
    by_port = _registry_ports()
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        match = _EXPORT.match(line.strip())
        if not match:
            continue
        raw = match.group(2)
        try:
            value = json.loads(raw)
        except ValueError:
            value = " ".join(shlex.split(raw))
        values[match.group(1)] = _fix_url(str(value), stack, by_port)
    prefix = f"{name.upper()}_"
    if name in stack.ports:
        values[f"{prefix}PORT"] = str(stack.ports[name])
    return values


def settings_kwargs(env: dict[str, str], name: str) -> dict[str, Any]:
    """``<NAME>_FOO=bar`` -> ``{"foo": "bar"}`` (for the service's Settings class)."""
    prefix = f"{name.upper()}_"
    return {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}


def admin_db_url(admin_url: str, database: str) -> str:
    """The administrative libpq URL, in the stack's database."""
    from unpuzzle_common.db import libpq_url

    return (
        make_url(libpq_url(admin_url)).set(database=database).render_as_string(hide_password=False)
    )


# -- seeding --------------------------------------------------------------------------------


async def seed_catalog(
    stack: Stack,
    *,
    admin_url: str,
    courses: int,
    sections: int | None = None,
    lessons: int | None = None,
    enrollments: int | None = None,
    reviews: int | None = None,
    phase: str,
) -> dict[str, Any]:
    """``courses_service seed`` with the stack's settings; returns what it said and took."""
    if stack.seeded.get("courses", 0) >= courses:
        log(phase, f"catalog already seeded ({stack.seeded['courses']} courses)")
        return {"courses": stack.seeded["courses"], "seconds": 0.0, "output": []}
    env = {**os.environ, **stack.extra_env, **service_env(stack, "courses")}
    args = [sys.executable, "-m", "courses_service", "seed", "--courses", str(courses)]
    for option, value in (
        ("--sections", sections),
        ("--lessons", lessons),
        ("--enrollments", enrollments),
        ("--reviews", reviews),
    ):
        if value is not None:
            args += [option, str(value)]
    log(phase, "seeding the catalog", command=" ".join(args[2:]))
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output: list[str] = []
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line.strip():
            output.append(line.strip())
            log(phase, f"seed: {line.strip()}")
    code = await proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"courses_service seed exited with {code}: {' / '.join(output[-3:])}")
    stack.seeded["courses"] = courses
    vacuum_s = await vacuum_schema(admin_url, str(stack.database), "courses")
    log(phase, f"VACUUM (ANALYZE) of the courses schema: {vacuum_s:.1f}s")
    return {"courses": courses, "seconds": seconds, "vacuum_seconds": vacuum_s, "output": output}


async def vacuum_schema(admin_url: str, database: str, schema: str) -> float:
    """``VACUUM (ANALYZE)`` every table of ``schema``: the steady state autovacuum reaches.

    Right after a bulk load no page is all-visible and no hint bit is set, so the first
    reads write; measuring that would measure the load, not the service.
    """

    def run() -> float:
        started = time.perf_counter()
        with psycopg.connect(admin_db_url(admin_url, database), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                conn.execute(
                    sql.SQL("VACUUM (ANALYZE) {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                )
        return time.perf_counter() - started

    return await asyncio.to_thread(run)


# -- settling -------------------------------------------------------------------------------


async def _unpublished(db_url: str) -> int:
    """Outbox rows not yet published, over every service schema of the stack's database."""

    def count() -> int:
        with psycopg.connect(db_url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
            ).fetchall()
            total = 0
            for (schema,) in tables:
                row = conn.execute(
                    f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'
                ).fetchone()
                total += int(row[0]) if row else 0
            return total

    return await asyncio.to_thread(count)


async def _consumers_behind(js: Any, prefix: str) -> tuple[int, dict[str, int]]:
    """Messages the stack's durable consumers have not yet acknowledged (total, by consumer)."""
    behind: dict[str, int] = {}
    for info in await js.streams_info():
        name = info.config.name
        if not name.lower().startswith(prefix.lower() + "_") or name.upper().endswith("_DLQ"):
            continue
        for consumer in await js.consumers_info(name):
            pending = int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
            if pending:
                behind[f"{name}/{consumer.name}"] = pending
    return sum(behind.values()), behind


async def settle(
    stack: Stack, *, admin_url: str, nats_url: str, phase: str, within: float = 120.0
) -> float:
    """Wait until the stack's events are all published and consumed; return the seconds.

    Quiet means twice in a row: no unpublished outbox row in any schema, and no durable
    consumer on the stack's streams with pending or unacknowledged messages.
    """
    from unpuzzle_common.events.bus import connect

    started = time.monotonic()
    db_url = admin_db_url(admin_url, str(stack.database))
    nc = await asyncio.wait_for(connect(nats_url, "bench-settle"), 10)
    js = nc.jetstream()
    quiet = 0
    last_log = 0.0
    try:
        while True:
            outbox = await _unpublished(db_url)
            total, behind = await _consumers_behind(js, str(stack.prefix))
            quiet = quiet + 1 if outbox == 0 and total == 0 else 0
            elapsed = time.monotonic() - started
            if quiet >= 2:
                log(phase, f"the stack's events are consumed ({elapsed:.1f}s)")
                return elapsed
            if elapsed > within:
                warn(
                    phase,
                    f"events still pending after {within:.0f}s: measuring anyway",
                    outbox=outbox,
                    behind=behind,
                )
                return elapsed
            if elapsed - last_log >= 5:
                last_log = elapsed
                log(phase, "waiting for the services to consume events", outbox=outbox, **behind)
            await asyncio.sleep(0.5)
    finally:
        await nc.close()


# -- what the services said -------------------------------------------------------------------


class LogWatch:
    """The warnings and errors the stack's processes logged since it was made.

    Reads ``<dev dir>/logs/<proc>.log`` (JSON lines) and the gateway's ``error.log`` from
    where they ended when the watch began: when a run had answers that were not 2xx,
    this says why.
    """

    def __init__(self, stack: Stack, procs: tuple[str, ...]) -> None:
        root = stack.dev_dir
        self.paths = [root / "logs" / f"{p}.log" for p in procs] if root else []
        if root:
            self.paths.append(root / "gateway" / "error.log")
        self.offsets = {path: path.stat().st_size if path.exists() else 0 for path in self.paths}

    def problems(self, limit: int = 2) -> list[str]:
        """Up to ``limit`` distinct messages per log (the services' first, then nginx's)."""
        found: list[str] = []
        for path in self.paths:
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(self.offsets[path])
                text = f.read(2_000_000).decode(errors="replace")
            mine: list[str] = []
            for line in text.splitlines():
                message = _problem(line)
                if message and message not in mine:
                    mine.append(message)
            found += [f"{path.name}: {m}" for m in mine[:limit]]
        return found


def _problem(line: str) -> str | None:
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            doc = json.loads(line)
        except ValueError:
            return None
        if str(doc.get("level", "")).lower() not in ("warning", "error", "critical"):
            return None
        message = str(doc.get("message", "")).strip()
        trace = str(doc.get("exception") or doc.get("exc_info") or "")
        last = [x for x in trace.splitlines() if x.strip() and not x.startswith("(Background")]
        if last:
            message += " | " + last[-1].strip()
        return message[:300]
    if "[error]" in line or "[crit]" in line or "[alert]" in line:  # nginx
        return line.split("] ", 1)[-1][:240]
    return None


def explain_errors(phase: str, label: str, errors: int, watch: LogWatch, lines: list[str]) -> None:
    """When a run had errors, log and record what the services said meanwhile."""
    if not errors:
        return
    said = watch.problems()
    warn(phase, f"{label}: {errors} answers not 2xx (or failed)", service_logs=said)
    lines.append(
        f"{label}: {errors} answers were not 2xx"
        + (("; the logs said: " + " / ".join(f"`{s}`" for s in said)) if said else "")
        + "."
    )


TRANSIENT = {500, 502, 503, 504}


async def request_retrying(
    client: Any, method: str, url: str, *, phase: str, attempts: int = 5, **kwargs: Any
) -> Any:
    """A set-up request (not a timed one), retried on 5xx and network errors.

    On a shared machine PostgreSQL may run out of connection slots for a moment (the
    services answer 500); set-up should ride that out, and say so.
    """
    import httpx

    for attempt in range(attempts):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if attempt == attempts - 1:
                raise
            warn(phase, f"{method} {url}: {exc!r}; retrying")
        else:
            if response.status_code not in TRANSIENT or attempt == attempts - 1:
                return response
            warn(phase, f"{method} {url} answered {response.status_code}; retrying")
        await asyncio.sleep(min(4.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


async def gather_limited(n: int, coroutines: list[Any]) -> list[Any]:
    """Await ``coroutines`` with at most ``n`` running at once; their results in order."""
    gate = asyncio.Semaphore(n)

    async def one(coroutine: Any) -> Any:
        async with gate:
            return await coroutine

    return list(await asyncio.gather(*(one(c) for c in coroutines)))
