"""payments' worker (the outbox relay) killed between the DB commit and the publish.

The worker is frozen (SIGSTOP) while 20 webhooks commit their ``payment.succeeded.v1``
rows; it is then let go, and frozen again the moment the first of those events shows on
NATS — in the middle of its batch, so some rows are published but not yet marked and the
others are committed but not published — and killed with SIGKILL there. A new worker
must publish every row (re-publishing the ones already stored, which JetStream drops by
``Nats-Msg-Id``), and courses must grant each enrollment exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time

import nats

N = 20


async def test_relay_killed_between_commit_and_publish(stack, record) -> None:
    teacher = stack.user("instructor")
    course_id = await stack.published_course(teacher, title="Relay crash")
    students = [stack.user("student") for _ in range(N)]
    worker = stack.proc("payments-worker")

    async with stack.client("payments") as pay:
        intents = [await stack.intent(pay, s, course_id) for s in students]
        events = [await stack.pay_at_stripe(i) for i in intents]
        payment_ids = [i["payment_id"] for i in intents]

        worker.pause()
        for event in events:
            assert (await stack.deliver(pay, event)).status_code == 200

    async def unpublished() -> int:
        return await stack.scalar(
            "SELECT count(*) FROM payments.outbox WHERE published_at IS NULL"
            " AND payload->'data'->>'payment_id' = ANY(%s)",
            (payment_ids,),
        )

    committed_unpublished = await unpublished()
    assert committed_unpublished == N  # committed; the frozen relay published none

    # Freeze the relay again as soon as one of these events reaches NATS.
    seen: list[str] = []
    nc = await nats.connect(stack.nats_url, name="faults-watch")
    try:

        async def on_event(msg) -> None:
            if not seen:
                worker.pause()
            seen.append(json.loads(msg.data)["data"]["payment_id"])

        await nc.subscribe(f"{stack.prefix}.payment.succeeded.v1", cb=on_event)
        await nc.flush()
        worker.resume()
        await stack.eventually(lambda: _true(seen), timeout=15, what="the relay publishes")
    finally:
        await nc.close()
    assert worker.paused
    await asyncio.sleep(0.2)  # what the relay had already sent reaches the stream

    stored = [
        e["data"]["payment_id"]
        for _, e in await stack.stream_events("payments", "payment.succeeded.v1")
        if e["data"]["payment_id"] in payment_ids
    ]
    still_unmarked = await unpublished()
    # Rows JetStream stored whose outbox row the relay had not marked yet.
    published_not_marked = len(stored) - (N - still_unmarked)
    worker.kill9()
    killed_at = time.monotonic()
    restart_seconds = await stack.restart("payments-worker")

    took, state = await stack.settle(
        course_id, payment_ids, [str(s.id) for s in students], timeout=30
    )
    recovery = time.monotonic() - killed_at
    republished_dropped = await stack.metric("payments", "events_publish_duplicates_total")
    published_new = await stack.metric(
        "payments", "events_published_total", type="payment.succeeded.v1"
    )
    record(
        scenario="2. Relay killed between DB commit and publish",
        injected=(
            f"payments worker frozen while {N} webhooks committed; resumed and frozen again "
            "on the first event seen on NATS (mid-batch), then SIGKILL; new worker started"
        ),
        committed_not_published_at_kill=still_unmarked - published_not_marked,
        published_not_marked_at_kill=published_not_marked,
        marked_at_kill=N - still_unmarked,
        new_worker_published=published_new,
        new_worker_republished_dropped_as_duplicate=republished_dropped,
        worker_restart_seconds=round(restart_seconds, 2),
        recovery_seconds=round(recovery, 2),
        **state,
    )
    stack.assert_exactly_once(state)
    # The new relay published exactly what was missing and re-sent the rest in vain.
    assert published_new + republished_dropped == still_unmarked
    assert republished_dropped == published_not_marked
    assert took < 30


async def _true(items: list) -> bool:
    return bool(items)
