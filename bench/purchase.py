"""Purchase (issue 4): webhook accepted → enrollment visible, and webhook intake.

Set-up (not timed): a seeded catalog (see :mod:`bench.catalog`; a small one is seeded
when the catalog phase did not run), students signed up at auth, one paid published
course per purchase and student. For each purchase, ``POST /api/v1/payments/intents``
through the gateway, then the PaymentIntent is confirmed with a test card at the
stack's fake Stripe, as ``payments_service.dev_webhooks.confirm_payment`` does.

Timed, one purchase at a time: the signed ``payment_intent.succeeded`` event is
delivered to ``POST /api/v1/payments/webhooks/stripe`` through the gateway; from its
200 the student's ``GET /api/v1/enrollments`` is polled back to back until the course
is listed. In between: payments' transaction and outbox, its relay, JetStream, the
courses worker's consumer (``payment.succeeded.v1`` → enrollment), PostgreSQL.

Webhook intake: signed deliveries per second through the gateway with the HTTP load
generator, (a) fresh events — ``payment_intent.payment_failed`` for the purchases that
succeeded, each with a new event id (recorded, and ignored: a failure after a success
changes nothing) — and (b) redeliveries of the ``payment_intent.succeeded`` events
already applied (answered as duplicates).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.accounts import Account, sign_up
from bench.loadgen import Request, Variant, run_load
from bench.phase import PhaseResult, Row, verdict
from bench.procmem import PeakWatch, service_processes
from bench.progress import Ticker, log, warn
from bench.stack import Stack
from bench.stackenv import (
    LogWatch,
    explain_errors,
    gather_limited,
    request_retrying,
    require_own_stack,
    seed_catalog,
    service_env,
    settings_kwargs,
    settle,
)
from bench.stats import Distribution, ms

PHASE = "purchase"
WEBHOOK = "/api/v1/payments/webhooks/stripe"
INTENTS = "/api/v1/payments/intents"
ENROLLMENTS = "/api/v1/enrollments"
TARGET_P99_MS = 100.0
#: Seconds one purchase may take to show before it is counted as missing.
VISIBLE_WITHIN = 10.0
#: The seed publishes ~90 % of its courses and makes ~20 % free.
PAID_SHARE = 0.6


@dataclass
class Purchase:
    student: Account
    course_id: str
    payment_id: str = ""
    provider_id: str = ""
    intent: dict[str, Any] | None = None


async def paid_course_ids(gateway_url: str, count: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    async with httpx.AsyncClient(timeout=30.0) as client:
        while len(ids) < count:
            params: dict[str, Any] = {"limit": 100, "free": "false"}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(gateway_url + "/api/v1/courses", params=params)
            response.raise_for_status()
            page = response.json()
            ids += [item["id"] for item in page["items"] if item.get("price", 0) > 0]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return ids[:count]


async def _create_intent(client: httpx.AsyncClient, url: str, p: Purchase) -> None:
    """``POST /intents``; a 404 means payments has not yet heard of the course: retry."""
    deadline = time.monotonic() + 60
    while True:
        response = await request_retrying(
            client,
            "POST",
            url + INTENTS,
            phase=PHASE,
            json={"course_id": p.course_id},
            headers={"Authorization": f"Bearer {p.student.access_token}"},
        )
        if response.status_code in (200, 201):
            doc = response.json()
            p.payment_id, p.provider_id = doc["payment_id"], doc["provider_payment_id"]
            return
        if response.status_code == 404 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            continue
        raise RuntimeError(f"POST {INTENTS} answered {response.status_code}: {response.text[:300]}")


def _signed(event: dict[str, Any], secret: str) -> Variant:
    from payments_service.dev_webhooks import signature_header

    body = json.dumps(event, separators=(",", ":")).encode()
    return Variant(
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(body, secret),
        },
        body=body,
    )


async def run(
    *,
    tool: str,
    stack: Stack,
    admin_url: str,
    nats_url: str,
    purchases: int,
    per_student: int,
    connections: int,
    duration: float,
    wrk_threads: int,
    quick: bool,
) -> PhaseResult:
    from payments_service.dev_webhooks import TEST_CARD, deliver, event_document
    from payments_service.provider import StripeGateway
    from payments_service.settings import Settings

    require_own_stack(stack, PHASE)
    result = PhaseResult(
        PHASE, "Purchase: webhook accepted → enrollment visible, and webhook intake"
    )
    gw = stack.gateway_url
    per_student = max(1, min(per_student, purchases))
    students_needed = math.ceil(purchases / per_student)
    await seed_catalog(
        stack,
        admin_url=admin_url,
        courses=max(stack.seeded.get("courses", 0), math.ceil(per_student / PAID_SHARE) + 20),
        phase=PHASE,
    )
    await settle(stack, admin_url=admin_url, nats_url=nats_url, phase=PHASE)
    courses = await paid_course_ids(gw, per_student)
    if len(courses) < per_student:
        raise RuntimeError(f"only {len(courses)} paid published courses; {per_student} needed")

    async with httpx.AsyncClient(timeout=30.0) as client:
        students = [
            await sign_up(client, stack.auth_url, f"buyer{i}") for i in range(students_needed)
        ]
    plan = [
        Purchase(student=students[i // per_student], course_id=courses[i % per_student])
        for i in range(purchases)
    ]
    log(PHASE, f"{len(students)} students, {per_student} paid courses each: creating intents")

    settings = Settings(**settings_kwargs(service_env(stack, "payments"), "payments"))
    secret = settings.stripe_webhook_secret.get_secret_value()
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    setup_logs = LogWatch(stack, ("payments-api", "payments-stripe"))
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        started = time.perf_counter()
        try:
            await gather_limited(8, [_create_intent(client, gw, p) for p in plan])
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; logs: {setup_logs.problems()}") from exc
        intents_s = time.perf_counter() - started
    log(PHASE, f"{purchases} intents in {intents_s:.1f}s; confirming them at the fake Stripe")
    stripe = StripeGateway(settings)
    try:

        async def confirm(p: Purchase) -> None:
            p.intent = await stripe.confirm_payment_intent(p.provider_id, payment_method=TEST_CARD)
            if p.intent.get("status") != "succeeded":
                raise RuntimeError(f"intent {p.provider_id}: {p.intent.get('status')}")

        await gather_limited(8, [confirm(p) for p in plan])
    finally:
        await stripe.aclose()

    watch = PeakWatch(
        service_processes(
            services=["payments", "courses"],
            ports=stack.ports,
            gateway_port=stack.gateway_port,
            sidecars=("payments-stripe",),
        )
    )

    # -- timed purchases, one at a time --------------------------------------------------------
    latencies: list[float] = []
    lower: list[float] = []  # to the start of the poll that listed it
    webhook_ms: list[float] = []
    poll_ms: list[float] = []
    polls: list[int] = []
    missing = 0
    bad_webhooks = 0
    succeeded_events: list[dict[str, Any]] = []
    ticker = Ticker(PHASE, f"timed purchases ({purchases})", purchases)
    involved = ("payments-api", "payments-worker", "courses-api", "courses-worker")
    timed_logs = LogWatch(stack, involved)
    async with httpx.AsyncClient(timeout=30.0) as client:
        for i, p in enumerate(plan):
            assert p.intent is not None
            event = event_document("payment_intent.succeeded", p.intent)
            succeeded_events.append(event)
            headers = {"Authorization": f"Bearer {p.student.access_token}"}
            sent = time.perf_counter()
            response = await deliver(gw + WEBHOOK, event, secret, client=client)
            accepted = time.perf_counter()
            webhook_ms.append((accepted - sent) * 1000)
            if response.status_code != 200:
                bad_webhooks += 1
                warn(PHASE, f"webhook answered {response.status_code}", body=response.text[:200])
                continue
            n = 0
            while True:
                asked = time.perf_counter()
                listed = await client.get(gw + ENROLLMENTS, headers=headers)
                now = time.perf_counter()
                n += 1
                poll_ms.append((now - asked) * 1000)
                items = listed.json().get("items", []) if listed.status_code == 200 else []
                if any(item.get("course_id") == p.course_id for item in items):
                    latencies.append((now - accepted) * 1000)
                    lower.append((asked - accepted) * 1000)
                    break
                if now - accepted > VISIBLE_WITHIN:
                    missing += 1
                    warn(PHASE, "enrollment not visible in time", payment_id=p.payment_id)
                    break
            polls.append(n)
            ticker.update(i + 1)
    visible = Distribution.of(latencies)
    log(
        PHASE,
        "purchases done",
        n=visible.n,
        p50_ms=round(visible.p50, 2),
        p99_ms=round(visible.p99, 2),
        missing=missing,
    )

    # -- webhook intake -----------------------------------------------------------------------
    fresh_count = 1500 if quick else 6000
    fresh = []
    for k in range(fresh_count):
        p = plan[k % len(plan)]
        assert p.intent is not None
        failed = {
            **p.intent,
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "message": "bench: declined"},
        }
        event = event_document(
            "payment_intent.payment_failed", failed, event_id=f"evt_bench{secrets.token_hex(10)}"
        )
        fresh.append(_signed(event, secret))
    duplicates = [_signed(e, secret) for e in succeeded_events]
    problems: list[str] = []
    explain_errors(PHASE, "timed purchases", missing + bad_webhooks, timed_logs, problems)
    runs = {}
    for label, variants in (
        ("webhooks, fresh events", fresh),
        ("webhooks, redeliveries", duplicates),
    ):
        logs = LogWatch(stack, involved)
        runs[label] = await run_load(
            tool,
            Request(gw + WEBHOOK, method="POST", variants=variants),
            label=label,
            connections=connections,
            duration=duration,
            phase=PHASE,
            wrk_threads=wrk_threads,
        )
        explain_errors(
            PHASE, label, runs[label].non_2xx + runs[label].socket_errors, logs, problems
        )
    result.memory = watch.read()
    result.memory_note = watch.note

    result.rows.append(
        Row.of_dist(
            "webhook 200 → enrollment listed",
            visible,
            errors=missing + bad_webhooks,
        )
    )
    result.rows.append(Row.of_dist("webhook delivery (send → 200)", Distribution.of(webhook_ms)))
    for label, r in runs.items():
        result.rows.append(Row.of_load(f"{label} (c={connections})", r))
        r.extra["unique_bodies"] = len(fresh if "fresh" in label else duplicates)
    result.target(
        f"webhook accepted → enrollment visible p99 < {TARGET_P99_MS:g} ms",
        f"p99 {ms(visible.p99)} ms (p50 {ms(visible.p50)} ms, n={visible.n})",
        None if visible.n == 0 else (visible.p99 < TARGET_P99_MS and missing == 0),
    )
    fresh_run = runs["webhooks, fresh events"]
    repeats = max(0, fresh_run.requests - fresh_count)
    polled = Distribution.of(poll_ms)
    floor = Distribution.of(lower)
    result.lines += [
        f"{purchases} purchases, one at a time: {len(students)} student"
        f"{'s' if len(students) != 1 else ''}, each buying {per_student} paid courses; intents "
        f"created beforehand ({intents_s:.1f} s) and confirmed at the fake Stripe with a test "
        "card.",
        "Timed from the webhook's 200 (through the gateway) to the answer of the first "
        f"`GET {ENROLLMENTS}` that lists the course, polled back to back "
        f"({sum(polls) / max(1, len(polls)):.1f} polls per purchase on average, p50 "
        f"{ms(polled.p50)} ms each): an upper bound; to the start of that poll, a lower "
        f"one, is p50 {ms(floor.p50)} ms, p99 {ms(floor.p99)} ms"
        + (f"; {missing} not visible within {VISIBLE_WITHIN:g} s" if missing else "")
        + (f"; {bad_webhooks} webhooks not answered 200" if bad_webhooks else "")
        + ".",
        f"Webhook intake: {connections} connections, {duration:g} s each, signed as Stripe "
        f"signs. Fresh: {fresh_count} distinct `payment_intent.payment_failed` events for "
        "succeeded payments (each recorded in `provider_events`, the payment locked, "
        "nothing changed)"
        + (f"; {repeats} requests went past them and were duplicates" if repeats else "")
        + f". Redeliveries: the {len(duplicates)} applied `payment_intent.succeeded` events "
        "again (answered `duplicate`).",
    ]
    result.lines += problems
    for t in result.targets:
        log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    result.raw = {
        "visible_ms": visible.as_dict(),
        "webhook_ms": Distribution.of(webhook_ms).as_dict(),
        "poll_ms": polled.as_dict(),
        "visible_lower_bound_ms": floor.as_dict(),
        "missing": missing,
        "bad_webhooks": bad_webhooks,
        "intake": {k: v.as_dict() for k, v in runs.items()},
        "students": len(students),
        "per_student": per_student,
        "intents_seconds": intents_s,
    }
    return result
