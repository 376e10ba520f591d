"""courses' worker (the consumer of payment.succeeded.v1) killed before it acked.

The courses worker is frozen (SIGSTOP) while 20 purchases are made and published, so
the whole burst waits in JetStream. It is let go and, while it works through the burst,
frozen again and again for a look: the first time an event is committed in its inbox
(enrollment granted) but not yet acknowledged on the server, it is killed with SIGKILL
right there. The events it had fetched come back after ``ack_wait`` (30 s): the one(s)
already applied must be absorbed by the inbox (acknowledged, no second effect), the
others applied once.
"""

from __future__ import annotations

import asyncio
import random
import time

N = 20
LOOK_DEADLINE = 15.0
#: ack_wait of the consumers is 30 s: the redelivery of what the killed worker had fetched.
RECOVERY_DEADLINE = 70.0


async def test_consumer_killed_before_ack(stack, record) -> None:
    teacher = stack.user("instructor")
    course_id = await stack.published_course(teacher, title="Consumer crash")
    students = [stack.user("student") for _ in range(N)]
    worker = stack.proc("courses-worker")

    async with stack.client("payments") as pay:
        intents = [await stack.intent(pay, s, course_id) for s in students]
        events = [await stack.pay_at_stripe(i) for i in intents]
        payment_ids = [i["payment_id"] for i in intents]
        worker.pause()
        for event in events:
            assert (await stack.deliver(pay, event)).status_code == 200

    seq_of: dict[str, int] = {}

    async def all_published() -> bool:
        seq_of.clear()
        for seq, envelope in await stack.stream_events("payments", "payment.succeeded.v1"):
            if envelope["data"]["payment_id"] in payment_ids:
                seq_of[envelope["id"]] = seq
        return len(seq_of) == N

    await stack.eventually(all_published, timeout=20, what="the burst is on the stream")

    async def committed_event_ids() -> list[str]:
        rows = await stack.query(
            "SELECT event_id::text FROM courses.inbox WHERE consumer = 'courses-payments'"
            " AND event_id = ANY(%s::uuid[])",
            (list(seq_of),),
        )
        return [r[0] for r in rows]

    # Let it go; look (frozen) until an applied event is still unacknowledged.
    worker.resume()
    looks = 0
    started = time.monotonic()
    while True:
        await asyncio.sleep(random.uniform(0.002, 0.015))
        worker.pause()
        await asyncio.sleep(0.03)  # acks already on the wire reach the server
        looks += 1
        committed = await committed_event_ids()
        info = await stack.consumer_info("payments", "courses-payments")
        unacked_applied = [e for e in committed if seq_of[e] > info.ack_floor.stream_seq]
        if unacked_applied or len(committed) == N or time.monotonic() - started > LOOK_DEADLINE:
            break
        worker.resume()
    worker.kill9()
    killed_at = time.monotonic()
    fetched_unacked = info.num_ack_pending
    restart_seconds = await stack.restart("courses-worker")

    took, state = await stack.settle(
        course_id, payment_ids, [str(s.id) for s in students], timeout=RECOVERY_DEADLINE
    )

    async def all_acked() -> bool:
        current = await stack.consumer_info("payments", "courses-payments")
        return current.num_ack_pending == 0 and current.num_pending == 0

    await stack.eventually(all_acked, timeout=RECOVERY_DEADLINE, what="every event acked")
    recovery = time.monotonic() - killed_at
    duplicates = await stack.metric(
        "courses", "events_consumed_total", consumer="courses-payments", result="duplicate"
    )
    applied_by_new = await stack.metric(
        "courses", "events_consumed_total", consumer="courses-payments", result="applied"
    )
    state = await stack.purchase_state(course_id, payment_ids, [str(s.id) for s in students])
    record(
        scenario="3. Consumer killed before ack",
        injected=(
            f"courses worker frozen during a burst of {N} payment.succeeded.v1, let go, "
            f"looked at frozen {looks} time(s); SIGKILL when an applied event was unacked"
        ),
        applied_at_kill=len(committed),
        applied_but_unacked_at_kill=len(unacked_applied),
        fetched_unacked_at_kill=fetched_unacked,
        absorbed_by_inbox=duplicates,
        applied_by_new_worker=applied_by_new,
        worker_restart_seconds=round(restart_seconds, 2),
        recovery_seconds=round(recovery, 2),
        **state,
    )
    stack.assert_exactly_once(state)
    assert took < RECOVERY_DEADLINE
    # The crash window was really hit, and the redelivered applied events cost nothing.
    assert unacked_applied, f"never caught an applied-but-unacked event in {looks} looks"
    assert duplicates >= len(unacked_applied)
    assert applied_by_new == N - len(committed)
