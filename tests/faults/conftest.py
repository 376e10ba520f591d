"""Fault injection against real processes: the services' ``serve`` and ``worker`` commands
as subprocesses, a private nats-server and redis-server we can stop, kill and restart,
payments' fake Stripe, and a database of our own on the shared PostgreSQL.

The stack is shared by the tests of this folder (a package, so it stops when they are
done; starting it takes a few seconds); each test makes its own course and students,
injects its fault, then checks the platform's promises for *its* purchases (DESIGN.md §4):

- every purchase has exactly one active enrollment (and the course's
  ``enrollment_count`` says so);
- payments' outbox is fully published; the PAYMENTS stream holds exactly one
  ``payment.succeeded.v1`` per purchase (none lost, none repeated);
- courses applied each event once (one inbox row each) and wrote one
  ``enrollment.created.v1`` per purchase.

After each test the stack is put back as it was (paused processes resumed, killed ones
restarted, NATS and Redis running). What each test injected and what held is appended to
:data:`RESULTS` and printed at the end of the run (the source of bench/RESULTS.md's
"Fault injection (tests/faults)" section); with ``UNPUZZLE_FAULTS_RESULTS=path`` it is
also written there as JSON.

Environment: ``UNPUZZLE_TEST_ADMIN_URL`` (administrative PostgreSQL URL, default
postgres@127.0.0.1), ``UNPUZZLE_FAULTS_KEEP=1`` keeps the database and the logs.
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
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from nats.js.errors import NotFoundError
from psycopg import sql
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get(
    "UNPUZZLE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_SERVER = shutil.which("nats-server") or "nats-server"
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
ISSUER, AUDIENCE, KID = "unpuzzle-auth", "unpuzzle-api", "faults-key"
SERVICES = ("auth", "courses", "payments")
PROBLEM_JSON = "application/problem+json"
START_TIMEOUT = 60.0
#: The private Redis keeps nothing on disk: a restart comes back empty.
REDIS_NO_DISK = ("--save", "", "--appendonly", "no")

#: What each scenario injected and what held (see the module doc).
RESULTS: list[dict[str, Any]] = []
#: Environment hiccups met on the way (processes restarted at start-up).
NOTES: list[str] = []

MISSING = [name for name in ("nats-server", "redis-server") if not shutil.which(name)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, every: float = 0.05
) -> float:
    """Poll ``check`` until it returns a truthy value; the seconds it took.

    Exceptions from ``check`` count as "not yet" (a service may be restarting); the last
    one is reported when the deadline passes.
    """
    started = time.monotonic()
    last: BaseException | None = None
    while True:
        try:
            if await check():
                return time.monotonic() - started
            last = None
        except Exception as exc:
            last = exc
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not true within {timeout:.0f}s (last error: {last!r})")
        await asyncio.sleep(every)


# -- processes ---------------------------------------------------------------------------


class Proc:
    """One child process in its own process group, output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.paused = False

    def start(self) -> None:
        assert not self.alive(), f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts + 1} {datetime.now(UTC)} =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.paused = False

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill9(self) -> None:
        """SIGKILL the process group (works on a paused one too) and reap it."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        self.resume()
        self.signal(signal.SIGTERM)
        try:
            assert self.popen is not None
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# -- tokens --------------------------------------------------------------------------------


class Mint:
    """ES256 access tokens as auth signs them, and the JWKS that verifies them."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.jwks = {"keys": [{**jwk, "kid": KID, "alg": "ES256", "use": "sig"}]}

    def token(self, user_id: uuid.UUID, roles: tuple[str, ...]) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "email": f"{user_id.hex[:10]}@example.com",
            "roles": list(roles),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + timedelta(minutes=15),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": KID})


def serve_jwks(mint: Mint) -> ThreadingHTTPServer:
    body = json.dumps(mint.jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="jwks").start()
    return server


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    roles: tuple[str, ...]
    headers: dict[str, str]


# -- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    run_id: str
    database: str
    prefix: str
    dir: Path
    mint: Mint
    ports: dict[str, int]
    webhook_secret: str
    procs: dict[str, Proc] = field(default_factory=dict)
    #: Start-up hiccups of the environment (see :meth:`wait_ready`), printed at the end.
    notes: list[str] = field(default_factory=lambda: NOTES)
    jwks_server: ThreadingHTTPServer | None = None

    #: :func:`eventually`, for the test modules (they cannot import this conftest by name).
    eventually = staticmethod(eventually)

    # ---- addresses
    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['nats']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def cache_prefix(self) -> str:
        """First token of courses' Redis keys."""
        return f"faults-{self.run_id}"

    @property
    def db_url(self) -> str:
        """libpq URL of our database as the administrator."""
        return psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=self.database)

    def stream(self, service: str) -> str:
        return f"{self.prefix}_{service}".upper()

    # ---- processes
    def proc(self, name: str) -> Proc:
        return self.procs[name]

    def logs(self, *names: str, lines: int = 20) -> str:
        chosen = names or tuple(self.procs)
        return "\n".join(f"--- {n} ---\n{self.procs[n].tail(lines)}" for n in chosen)

    async def ready(self, name: str) -> bool:
        """Whether process ``name`` is up and answering."""
        proc = self.procs[name]
        if not proc.alive() or proc.paused:
            return False
        if name == "nats":
            return await nats_ready(self.nats_url)
        if name == "redis":
            return await redis_ready(self.ports["redis"])
        if name == "stripe":
            return port_open(self.ports["stripe"])
        service, kind = name.split("-")
        async with httpx.AsyncClient(timeout=2) as client:
            if kind == "api":
                # /readyz also checks Redis and NATS: "up" is enough while they are down.
                response = await client.get(f"{self.url(service)}/healthz")
            else:
                response = await client.get(
                    f"http://127.0.0.1:{self.ports[service + '-probe']}/healthz"
                )
        return response.status_code == 200

    async def wait_ready(self, *names: str, timeout: float = START_TIMEOUT) -> float:
        """Wait until ``names`` (default: all) answer.

        A process that exits while starting is started again, twice at most: on a
        shared machine PostgreSQL may briefly have no connection slot left
        ("remaining connection slots are reserved"), which is not what these tests
        inject. Each such restart is noted in :attr:`notes`.
        """
        chosen = names or tuple(self.procs)
        again = dict.fromkeys(chosen, 0)

        async def all_ready() -> bool:
            for name in chosen:
                proc = self.procs[name]
                if not proc.alive():
                    if again[name] >= 2:
                        raise AssertionError(f"{name} exited:\n{proc.tail(40)}")
                    again[name] += 1
                    last = proc.tail(1)[-300:]
                    self.notes.append(f"{name} exited while starting; started again ({last})")
                    proc.start()
                    return False
                if not await self.ready(name):
                    return False
            return True

        return await eventually(all_ready, timeout=timeout, what=f"ready: {chosen}", every=0.1)

    async def restart(self, name: str, *, timeout: float = START_TIMEOUT) -> float:
        """Start ``name`` again (after a kill); the seconds until it answers."""
        proc = self.procs[name]
        if proc.alive():
            proc.stop()
        started = time.monotonic()
        proc.start()
        await self.wait_ready(name, timeout=timeout)
        return time.monotonic() - started

    async def restore(self) -> list[str]:
        """Put every process back: resume paused ones, start dead ones. Returns what it did."""
        done = []
        for name, proc in self.procs.items():
            if proc.alive() and proc.paused:
                proc.resume()
                done.append(f"resumed {name}")
            if not proc.alive():
                proc.start()
                done.append(f"restarted {name}")
        await self.wait_ready()
        return done

    # ---- HTTP
    def user(self, *roles: str) -> User:
        user_id = uuid.uuid4()
        token = self.mint.token(user_id, roles)
        return User(user_id, roles, {"Authorization": f"Bearer {token}"})

    def client(self, service: str, timeout: float = 15.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url(service), timeout=timeout)

    async def published_course(self, teacher: User, *, price: int = 4900, title: str) -> str:
        """A published course (paid unless ``price`` is 0) that payments knows."""
        async with self.client("courses") as courses:
            created = await courses.post(
                "/api/v1/courses",
                json={"title": title, "price": price, "currency": "usd"},
                headers=teacher.headers,
            )
            assert created.status_code == 201, created.text
            course_id = created.json()["id"]
            section = await courses.post(
                f"/api/v1/courses/{course_id}/sections",
                json={"title": "One"},
                headers=teacher.headers,
            )
            assert section.status_code == 201, section.text
            lesson = await courses.post(
                f"/api/v1/courses/{course_id}/sections/{section.json()['id']}/lessons",
                json={"title": "Lesson", "duration_seconds": 60, "content": "<p>x</p>"},
                headers=teacher.headers,
            )
            assert lesson.status_code == 201, lesson.text
            published = await courses.post(
                f"/api/v1/courses/{course_id}/publish", headers=teacher.headers
            )
            assert published.status_code == 200, published.text
        if price:

            async def known() -> bool:
                rows = await self.query(
                    "SELECT 1 FROM payments.courses WHERE course_id = %s AND published",
                    (course_id,),
                )
                return bool(rows)

            await eventually(known, timeout=15, what="payments learns the published course")
        return course_id

    async def open_intent(
        self, client: httpx.AsyncClient, student: User, course_id: str, **kw: Any
    ) -> httpx.Response:
        return await client.post(
            "/api/v1/payments/intents",
            json={"course_id": course_id},
            headers={**student.headers, **kw.pop("headers", {})},
            **kw,
        )

    async def intent(self, client: httpx.AsyncClient, student: User, course_id: str) -> dict:
        """A new payment for ``student``: the 201 body of ``POST /intents``."""
        response = await self.open_intent(client, student, course_id)
        assert response.status_code == 201, response.text
        return response.json()

    def payments_settings(self) -> Any:
        from payments_service.settings import Settings

        return Settings(
            database_url="postgresql+psycopg://unused@127.0.0.1/unused",
            stripe_api_base=self.url("stripe"),
            stripe_api_key=SecretStr("sk_test_faults"),
            stripe_webhook_secret=SecretStr(self.webhook_secret),
            stripe_max_network_retries=0,
            stripe_timeout=10.0,
        )

    async def pay_at_stripe(self, intent: dict[str, Any]) -> dict[str, Any]:
        """Confirm the PaymentIntent at the fake Stripe with a test card (what Stripe.js does);
        returns the ``payment_intent.succeeded`` event Stripe would then send."""
        from payments_service.dev_webhooks import event_document
        from payments_service.provider import StripeGateway

        gateway = StripeGateway(self.payments_settings())
        try:
            document = await gateway.confirm_payment_intent(intent["provider_payment_id"])
        finally:
            await gateway.aclose()
        assert document["status"] == "succeeded", document
        return event_document("payment_intent.succeeded", document)

    async def deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
        """POST the event, signed as Stripe signs it, to payments' webhook endpoint."""
        from payments_service.dev_webhooks import deliver

        return await deliver(
            f"{self.url('payments')}/api/v1/payments/webhooks/stripe",
            event,
            self.webhook_secret,
            client=client,
        )

    # ---- database
    async def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on our database as the administrator (a connection of its own)."""
        async with await psycopg.AsyncConnection.connect(
            self.db_url, autocommit=True, application_name="faults-harness"
        ) as conn:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall() if cursor.description else []

    async def scalar(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        rows = await self.query(statement, params)
        return rows[0][0] if rows else None

    # ---- NATS
    @contextlib.asynccontextmanager
    async def jetstream(self) -> AsyncIterator[Any]:
        nc = await nats.connect(
            self.nats_url,
            connect_timeout=2,
            max_reconnect_attempts=2,
            reconnect_time_wait=0.2,
            name="faults-harness",
        )
        try:
            yield nc.jetstream(timeout=5)
        finally:
            await nc.close()

    async def stream_events(self, service: str, event_type: str) -> list[tuple[int, dict]]:
        """(stream sequence, envelope) of every ``event_type`` message in ``service``'s stream."""
        subject = f"{self.prefix}.{event_type}"
        found = []
        async with self.jetstream() as js:
            state = (await js.stream_info(self.stream(service))).state
            for seq in range(state.first_seq, state.last_seq + 1):
                try:
                    msg = await js.get_msg(self.stream(service), seq)
                except NotFoundError:
                    continue
                if msg.subject == subject:
                    found.append((seq, json.loads(msg.data)))
        return found

    async def consumer_info(self, service: str, durable: str) -> Any:
        async with self.jetstream() as js:
            return await js.consumer_info(self.stream(service), durable)

    # ---- worker metrics
    async def metric(self, worker: str, name: str, **labels: str) -> float:
        """Sum of the ``worker``'s (courses, payments) Prometheus samples ``name`` matching
        ``labels`` (this process only: counters restart at zero with the worker)."""
        async with httpx.AsyncClient(timeout=3) as client:
            text = (
                await client.get(f"http://127.0.0.1:{self.ports[worker + '-probe']}/metrics")
            ).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    # ---- the promises
    async def purchase_state(
        self, course_id: str, payment_ids: list[str], user_ids: list[str]
    ) -> dict[str, Any]:
        """What the platform holds for these purchases (all counts, for the assertions)."""
        enrollments = dict(
            await self.query(
                "SELECT user_id::text, count(*) FROM courses.enrollments"
                " WHERE course_id = %s AND status = 'active' GROUP BY user_id",
                (course_id,),
            )
        )
        created = dict(
            await self.query(
                "SELECT payload->'data'->>'user_id', count(*) FROM courses.outbox"
                " WHERE type = 'enrollment.created.v1' AND payload->'data'->>'course_id' = %s"
                " GROUP BY 1",
                (course_id,),
            )
        )
        grants = await self.scalar(
            "SELECT count(*) FROM courses.payment_grants WHERE payment_id = ANY(%s::uuid[])",
            (payment_ids,),
        )
        enrollment_count = await self.scalar(
            "SELECT enrollment_count FROM courses.courses WHERE id = %s", (course_id,)
        )
        succeeded = await self.scalar(
            "SELECT count(*) FROM payments.payments WHERE id = ANY(%s::uuid[])"
            " AND status = 'succeeded'",
            (payment_ids,),
        )
        outbox_ours = dict(
            await self.query(
                "SELECT (published_at IS NOT NULL), count(*) FROM payments.outbox"
                " WHERE type = 'payment.succeeded.v1'"
                " AND payload->'data'->>'payment_id' = ANY(%s) GROUP BY 1",
                (payment_ids,),
            )
        )
        unpublished_all = await self.scalar(
            "SELECT count(*) FROM payments.outbox WHERE published_at IS NULL"
        )
        in_stream: dict[str, int] = {}
        event_ids = set()
        for _, envelope in await self.stream_events("payments", "payment.succeeded.v1"):
            pid = envelope["data"]["payment_id"]
            if pid in payment_ids:
                in_stream[pid] = in_stream.get(pid, 0) + 1
                event_ids.add(envelope["id"])
        inbox = await self.scalar(
            "SELECT count(*) FROM courses.inbox WHERE consumer = 'courses-payments'"
            " AND event_id = ANY(%s::uuid[])",
            (sorted(event_ids),),
        )
        return {
            "purchases": len(payment_ids),
            "payments_succeeded": succeeded,
            "outbox_rows": sum(outbox_ours.values()),
            "outbox_unpublished": outbox_ours.get(False, 0),
            "outbox_unpublished_all": unpublished_all,
            "stream_payment_succeeded": sum(in_stream.values()),
            "stream_distinct_payments": len(in_stream),
            "stream_max_per_payment": max(in_stream.values(), default=0),
            "inbox_rows": inbox,
            "grants": grants,
            "active_enrollments": sum(enrollments.values()),
            "students_enrolled": sum(1 for u in user_ids if enrollments.get(u) == 1),
            "enrollment_count_on_course": enrollment_count,
            "enrollment_created_events": sum(created.values()),
            "enrollment_created_max_per_student": max(created.values(), default=0),
        }

    @staticmethod
    def settled(state: dict[str, Any]) -> bool:
        n = state["purchases"]
        return (
            state["payments_succeeded"] == n
            and state["outbox_rows"] == n
            and state["outbox_unpublished"] == 0
            and state["stream_distinct_payments"] == n
            and state["students_enrolled"] == n
            and state["enrollment_created_events"] == n
        )

    @staticmethod
    def assert_exactly_once(state: dict[str, Any]) -> None:
        n = state["purchases"]
        expected = {
            "payments_succeeded": n,
            "outbox_rows": n,
            "outbox_unpublished": 0,
            "stream_payment_succeeded": n,
            "stream_distinct_payments": n,
            "stream_max_per_payment": 1 if n else 0,
            "inbox_rows": n,
            "grants": n,
            "active_enrollments": n,
            "students_enrolled": n,
            "enrollment_count_on_course": n,
            "enrollment_created_events": n,
            "enrollment_created_max_per_student": 1 if n else 0,
        }
        wrong = {k: (state[k], v) for k, v in expected.items() if state[k] != v}
        assert not wrong, f"(found, expected): {wrong}; state {state}"

    async def settle(
        self, course_id: str, payment_ids: list[str], user_ids: list[str], *, timeout: float
    ) -> tuple[float, dict[str, Any]]:
        """Wait until every purchase went through; (seconds, final state)."""
        last: dict[str, Any] = {}

        async def done() -> bool:
            last.update(await self.purchase_state(course_id, payment_ids, user_ids))
            return self.settled(last)

        try:
            took = await eventually(done, timeout=timeout, what="purchases settle", every=0.2)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nstate: {last}\n{self.logs('payments-worker', 'courses-worker')}"
            ) from None
        # One more look once everything is there: late duplicates would show now.
        await asyncio.sleep(0.5)
        return took, await self.purchase_state(course_id, payment_ids, user_ids)


async def nats_ready(url: str) -> bool:
    try:
        nc = await nats.connect(
            url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False
        )
    except Exception:
        return False
    try:
        await nc.jetstream(timeout=2).account_info()
        return True
    except Exception:
        return False
    finally:
        await nc.close()


async def redis_ready(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


# -- set-up ------------------------------------------------------------------------------------


def _provision(database: str) -> None:
    from unpuzzle_common.db import provision_service
    from unpuzzle_common.migrations import upgrade_to_head

    for service in SERVICES:
        # Local connections are trusted on this project's machines and CI; the password
        # is the one the services' own tests give their roles.
        url = provision_service(
            ADMIN_URL, service=service, password="test-password", database=database
        )
        upgrade_to_head(REPO / "services" / service, url)


def _service_url(service: str, database: str) -> str:
    from unpuzzle_common.db import service_url

    return service_url(ADMIN_URL, service=service, password="test-password", database=database)


def _drop_database(database: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(tuple(f"{s.upper()}_" for s in SERVICES)) and k != "UNPUZZLE_ENV"
    }
    env.update({"ENV": "development", "PYTHONUNBUFFERED": "1"})
    return env


def _service_env(stack: Stack, service: str) -> dict[str, str]:
    p = service.upper() + "_"
    env = {
        p + "DATABASE_URL": _service_url(service, stack.database),
        p + "DB_POOL_SIZE": "3",
        p + "NATS_URL": stack.nats_url,
        p + "REDIS_URL": stack.redis_url,
        p + "EVENTS_PREFIX": stack.prefix,
        p + "HOST": "127.0.0.1",
        p + "PORT": str(stack.ports[service]),
        p + "LOG_LEVEL": "INFO",
    }
    if service != "auth":  # auth trusts its own keys; the others trust our JWKS
        env |= {
            p + "JWKS_URL": f"http://127.0.0.1:{stack.ports['jwks']}/jwks.json",
            p + "WORKER_HOST": "127.0.0.1",
            p + "WORKER_PORT": str(stack.ports[service + "-probe"]),
        }
    if service == "courses":
        env |= {"COURSES_CACHE_PREFIX": stack.cache_prefix, "COURSES_CACHE_RETRY_AFTER": "2"}
    if service == "payments":
        env |= {
            "PAYMENTS_STRIPE_API_BASE": stack.url("stripe"),
            "PAYMENTS_STRIPE_API_KEY": "sk_test_faults",
            "PAYMENTS_STRIPE_WEBHOOK_SECRET": stack.webhook_secret,
            "PAYMENTS_STRIPE_MAX_NETWORK_RETRIES": "0",
            "PAYMENTS_WEBHOOK_URL": f"{stack.url('payments')}/api/v1/payments/webhooks/stripe",
        }
    if service == "auth":
        env |= {
            "AUTH_KEY_ENCRYPTION_SECRET": secrets.token_urlsafe(32),
            "AUTH_MAIL_DIR": str(stack.dir / "mail"),
            # Cheap hashing: the faults are the point here, not argon2's cost.
            "AUTH_ARGON2_TIME_COST": "1",
            "AUTH_ARGON2_MEMORY_COST": "8192",
            "AUTH_ARGON2_PARALLELISM": "1",
        }
    return {**_base_env(), **env}


@pytest.fixture(scope="package")
def stack_sync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if MISSING:  # machines of this project's kind have both (Debian packages)
        pytest.skip(f"not installed: {', '.join(MISSING)}")
    run_id = uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("faults")
    (root / "logs").mkdir()
    names = ("nats", "redis", "stripe", "jwks", *SERVICES)
    ports = {n: free_port() for n in names}
    ports |= {f"{s}-probe": free_port() for s in ("courses", "payments")}
    stack = Stack(
        run_id=run_id,
        database=f"unpuzzle_faults_{run_id}",
        prefix=f"flt{run_id}",
        dir=root,
        mint=Mint(),
        ports=ports,
        webhook_secret="whsec_faults_" + secrets.token_hex(16),
    )
    logs = root / "logs"
    stack.procs["nats"] = Proc(
        "nats",
        [NATS_SERVER, "-js", "-sd", str(root / "js"), "-a", "127.0.0.1", "-p", str(ports["nats"])],
        _base_env(),
        logs,
    )
    stack.procs["redis"] = Proc(
        "redis",
        [REDIS_SERVER, "--port", str(ports["redis"]), "--bind", "127.0.0.1", *REDIS_NO_DISK],
        _base_env(),
        logs,
    )
    py = sys.executable
    stack.procs["stripe"] = Proc(
        "stripe",
        [py, "-m", "payments_service", "fake-stripe", "--port", str(ports["stripe"])],
        _base_env(),
        logs,
    )
    jwks = serve_jwks(stack.mint)
    stack.jwks_server = jwks
    stack.ports["jwks"] = jwks.server_address[1]
    started = time.monotonic()
    try:
        for name in ("nats", "redis", "stripe"):
            stack.procs[name].start()
        _provision(stack.database)
        for service in SERVICES:
            env = _service_env(stack, service)
            stack.procs[f"{service}-api"] = Proc(
                f"{service}-api", [py, "-m", f"{service}_service", "serve"], env, logs
            )
            if service != "auth":  # auth runs for its sign-in throttle only: no events needed
                stack.procs[f"{service}-worker"] = Proc(
                    f"{service}-worker", [py, "-m", f"{service}_service", "worker"], env, logs
                )
        for proc in stack.procs.values():
            if not proc.alive():
                proc.start()
        asyncio.run(stack.wait_ready())
        print(f"\nfaults stack ready in {time.monotonic() - started:.1f}s (logs: {logs})")
        yield stack
    finally:
        for proc in reversed(list(stack.procs.values())):
            proc.stop()
        jwks.shutdown()
        if not os.environ.get("UNPUZZLE_FAULTS_KEEP"):
            _drop_database(stack.database)
            shutil.rmtree(root / "js", ignore_errors=True)


@pytest.fixture
async def stack(stack_sync: Stack) -> AsyncIterator[Stack]:
    """The shared stack, checked healthy before the test and put back after it."""
    await stack_sync.restore()
    yield stack_sync
    done = await stack_sync.restore()
    if done:
        print(f"restored after the test: {done}")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``record(scenario=..., injected=..., held=..., **counts)``: one row of RESULTS."""

    def add(**row: Any) -> dict[str, Any]:
        row.setdefault("test", request.node.name)
        RESULTS.append(row)
        return row

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault injection results")
    for row in RESULTS:
        terminalreporter.write_line(json.dumps(row, default=str))
    for note in NOTES:
        terminalreporter.write_line(f"note: {note}")
    target = os.environ.get("UNPUZZLE_FAULTS_RESULTS")
    if target:
        Path(target).write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")
