"""PostgreSQL connections dropped under load.

While 16 students buy a course (intent, payment at Stripe, signed webhook) and browse
(catalog, course page, their enrollments) from 4 concurrent clients, every database
connection of the services — API pools, workers' pools, the relay's LISTEN connection —
is terminated with ``pg_terminate_backend`` every 0.3 s for about 4 s.

What must hold: every answer is a success or a problem+json document; a 5xx is allowed
only as problem+json, and the same request retried (as a client or Stripe would) then
succeeds; no connection is dropped on the client; no process dies; the workers recover
on their own, and every purchase ends with exactly one enrollment.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import httpx

N = 16
CLIENTS = 4
ROUNDS, EVERY = 13, 0.3
TRIES = 8


class Ledger:
    """Every answer the clients got, and the requests that never succeeded."""

    def __init__(self) -> None:
        self.statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        self.unclean: list[str] = []
        self.transport_errors: list[str] = []
        self.gave_up: list[str] = []
        self.retried_ok = 0

    async def call(self, op: str, send, ok: tuple[int, ...]) -> httpx.Response | None:
        """``send()`` until it answers one of ``ok``; 5xx problem+json answers are retried."""
        for attempt in range(TRIES):
            try:
                response = await send()
            except httpx.TransportError as exc:
                self.transport_errors.append(f"{op}: {exc!r}")
                await asyncio.sleep(0.2)
                continue
            self.statuses[(op, response.status_code)] += 1
            if response.status_code in ok:
                self.retried_ok += attempt > 0
                return response
            problem = response.headers.get("content-type", "").startswith(
                "application/problem+json"
            )
            if not problem or response.status_code < 500:
                self.unclean.append(f"{op}: {response.status_code} {response.text[:300]}")
                return None
            await asyncio.sleep(0.2)
        self.gave_up.append(op)
        return None

    def count(self, predicate) -> int:
        return sum(n for (_, status), n in self.statuses.items() if predicate(status))


async def test_postgres_connections_dropped(stack, record) -> None:
    teacher = stack.user("instructor")
    course_id = await stack.published_course(teacher, title="Connections dropped")
    students = [stack.user("student") for _ in range(N)]
    payment_ids: list[str] = []
    ledger = Ledger()
    terminated: collections.Counter[str] = collections.Counter()
    terminating = asyncio.Event()
    stop = asyncio.Event()

    async def terminator() -> None:
        for _ in range(ROUNDS):
            rows = await stack.query(
                "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (stack.database,),
            )
            terminated.update(name or "?" for name, done in rows if done)
            terminating.set()
            await asyncio.sleep(EVERY)
        stop.set()

    async def buyer(mine: list[Any], pay: httpx.AsyncClient, courses: httpx.AsyncClient) -> None:
        await terminating.wait()
        for student in mine:
            intent = await ledger.call(
                "POST /payments/intents",
                lambda s=student: stack.open_intent(pay, s, course_id),
                (200, 201),
            )
            if intent is None:
                continue
            payment_ids.append(intent.json()["payment_id"])
            event = await stack.pay_at_stripe(intent.json())
            await ledger.call(
                "POST /payments/webhooks/stripe", lambda e=event: stack.deliver(pay, e), (200,)
            )
            await browse(courses, student)
            await asyncio.sleep(0.1)
        while not stop.is_set():  # keep the services busy until the last termination
            await browse(courses, mine[0])

    async def browse(courses: httpx.AsyncClient, student: Any) -> None:
        await ledger.call("GET /courses", lambda: courses.get("/api/v1/courses"), (200,))
        await ledger.call(
            "GET /courses/{id}",
            lambda: courses.get(f"/api/v1/courses/{course_id}", headers=student.headers),
            (200,),
        )
        await ledger.call(
            "GET /enrollments",
            lambda: courses.get("/api/v1/enrollments", headers=student.headers),
            (200,),
        )

    started = time.monotonic()
    async with stack.client("payments") as pay, stack.client("courses") as courses:
        await asyncio.gather(
            terminator(),
            *(buyer(students[i::CLIENTS], pay, courses) for i in range(CLIENTS)),
        )
    load_seconds = time.monotonic() - started
    dead = [name for name, proc in stack.procs.items() if not proc.alive()]

    took, state = await stack.settle(
        course_id, payment_ids, [str(s.id) for s in students], timeout=30
    )
    record(
        scenario="4. PostgreSQL connections dropped",
        injected=(
            f"pg_terminate_backend on every connection of the database, {ROUNDS} rounds "
            f"every {EVERY}s, under {CLIENTS} concurrent clients buying and browsing"
        ),
        connections_terminated=sum(terminated.values()),
        terminated_by_application=dict(terminated),
        requests=ledger.count(lambda s: True),
        answers_2xx=ledger.count(lambda s: 200 <= s < 300),
        answers_5xx_problem_json=ledger.count(lambda s: s >= 500),
        answers_by_route={f"{op} {s}": n for (op, s), n in sorted(ledger.statuses.items())},
        retries_that_succeeded=ledger.retried_ok,
        unclean_answers=len(ledger.unclean),
        transport_errors=len(ledger.transport_errors),
        gave_up=len(ledger.gave_up),
        processes_died=dead,
        load_seconds=round(load_seconds, 2),
        settle_seconds_after_load=round(took, 2),
        **state,
    )
    assert not dead, stack.logs(*dead)
    assert not ledger.unclean, ledger.unclean
    assert not ledger.transport_errors, ledger.transport_errors
    assert not ledger.gave_up, ledger.gave_up
    assert len(payment_ids) == N
    assert sum(terminated.values()) > 0
    stack.assert_exactly_once(state)
