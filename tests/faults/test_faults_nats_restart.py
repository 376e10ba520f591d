"""NATS restarted in the middle of a purchase journey.

20 purchases of one paid course: 8 go through before the outage; nats-server is then
stopped, and while it is down 8 more buyers pay (their webhooks commit
``payment.succeeded.v1`` to payments' outbox, which cannot be published) and 4 new buyers
open their intents and pay; after a few seconds the server is started again on the same
store. After recovery every purchase has exactly one enrollment, the outbox is fully
published and the PAYMENTS stream holds exactly one ``payment.succeeded.v1`` per purchase.
"""

from __future__ import annotations

import asyncio
import time

BEFORE, DURING_OPEN, DURING_NEW = 8, 8, 4
# Longer than the relay's publish timeout (5 s): a publish attempted during the outage
# times out and is retried, while nats-py may still deliver its buffered copy on reconnect.
OUTAGE_SECONDS = 6.0
RECOVERY_DEADLINE = 60.0  # a message in flight at the stop comes back after ack_wait (30 s)


async def test_nats_restarted_mid_journey(stack, record) -> None:
    teacher = stack.user("instructor")
    course_id = await stack.published_course(teacher, title="NATS restart")
    students = [stack.user("student") for _ in range(BEFORE + DURING_OPEN + DURING_NEW)]
    payment_ids: list[str] = []
    nats_proc = stack.proc("nats")
    absorbed_before = await stack.metric(
        "courses", "events_consumed_total", consumer="courses-payments", result="duplicate"
    )
    failures_before = await stack.metric("payments", "events_publish_failures_total")
    duplicates_before = await stack.metric("payments", "events_publish_duplicates_total")

    async with stack.client("payments") as pay:
        intents = [await stack.intent(pay, s, course_id) for s in students[: BEFORE + DURING_OPEN]]
        payment_ids += [i["payment_id"] for i in intents]
        for intent in intents[:BEFORE]:
            assert (await stack.deliver(pay, await stack.pay_at_stripe(intent))).status_code == 200

        async def first_ones_through() -> bool:
            state = await stack.purchase_state(
                course_id, payment_ids[:BEFORE], [str(s.id) for s in students[:BEFORE]]
            )
            info = await stack.consumer_info("payments", "courses-payments")
            return state["students_enrolled"] == BEFORE and info.num_ack_pending == 0

        await stack.eventually(first_ones_through, timeout=20, what="first purchases enrolled")

        # -- the outage
        nats_proc.stop()
        down_at = time.monotonic()
        webhook_statuses = []
        for intent in intents[BEFORE:]:
            event = await stack.pay_at_stripe(intent)
            webhook_statuses.append((await stack.deliver(pay, event)).status_code)
        for student in students[BEFORE + DURING_OPEN :]:
            intent = await stack.intent(pay, student, course_id)  # works without NATS
            payment_ids.append(intent["payment_id"])
            webhook_statuses.append(
                (await stack.deliver(pay, await stack.pay_at_stripe(intent))).status_code
            )
        assert webhook_statuses == [200] * (DURING_OPEN + DURING_NEW)
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        waiting = await stack.scalar(
            "SELECT count(*) FROM payments.outbox WHERE published_at IS NULL"
            " AND payload->'data'->>'payment_id' = ANY(%s)",
            (payment_ids,),
        )
        outage = time.monotonic() - down_at
        nats_proc.start()
        restarted_at = time.monotonic()
        await stack.wait_ready("nats", timeout=20)

    took, state = await stack.settle(
        course_id, payment_ids, [str(s.id) for s in students], timeout=RECOVERY_DEADLINE
    )
    recovery = time.monotonic() - restarted_at
    absorbed = (
        await stack.metric(
            "courses", "events_consumed_total", consumer="courses-payments", result="duplicate"
        )
        - absorbed_before
    )
    failures = await stack.metric("payments", "events_publish_failures_total") - failures_before
    duplicates = (
        await stack.metric("payments", "events_publish_duplicates_total") - duplicates_before
    )
    record(
        scenario="1. NATS restarted mid-journey",
        injected=(
            f"nats-server stopped (SIGTERM) for {outage:.1f}s after {BEFORE} of "
            f"{len(payment_ids)} purchases, then restarted on the same store; "
            f"{DURING_OPEN + DURING_NEW} purchases paid during the outage "
            f"({DURING_NEW} of them opened their intent during it)"
        ),
        outbox_waiting_at_restart=waiting,
        relay_publish_failures=failures,
        relay_republished_dropped_as_duplicate=duplicates,
        redeliveries_absorbed_by_inbox=absorbed,
        recovery_seconds=round(recovery, 2),
        **state,
    )
    # Every purchase made during the outage waited in the outbox; none was lost.
    assert waiting == DURING_OPEN + DURING_NEW
    stack.assert_exactly_once(state)
    assert state["outbox_unpublished_all"] == 0
    assert took < RECOVERY_DEADLINE
