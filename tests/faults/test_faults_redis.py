"""Redis down: the services' private redis-server killed (connection refused), or frozen
(SIGSTOP: every call waits for the client's 2 s socket timeout), then back.

- The catalog and course pages answer from PostgreSQL while Redis is away, a write made
  meanwhile is visible at once, and none of it is stale once Redis is back — also when
  Redis comes back *with* its old entries (the frozen case: a partition, not a restart).
- A purchase made while Redis is down completes (payments' webhook and courses' worker
  do not need it).
- The paths that need Redis — ``Idempotency-Key`` POSTs (libs/common) and auth's sign-in
  throttle — answer cleanly while it is down (no 500), and work again once it is back.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

PROBLEM_JSON = "application/problem+json"
#: A Redis call fails within the client's 2 s socket timeout; a request makes a few.
SLOW_ANSWER = 8.0


def _is_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(PROBLEM_JSON)


async def _timed(send) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await send()
    return response, time.monotonic() - started


async def test_redis_down_catalog_uncached_and_purchases_hold(stack, record) -> None:
    teacher = stack.user("instructor")
    course_id = await stack.published_course(teacher, title="Redis outage")
    student = stack.user("student")
    redis = stack.proc("redis")
    answers: list[tuple[str, int, float]] = []

    async with stack.client("courses") as courses, stack.client("payments") as pay:

        async def get(label: str, path: str, **kw) -> httpx.Response:
            response, took = await _timed(lambda: courses.get(path, **kw))
            answers.append((label, response.status_code, round(took, 3)))
            return response

        async def title_everywhere(expected: str) -> bool:
            catalog = await get("catalog", "/api/v1/courses", params={"limit": 100})
            detail = await get("detail", f"/api/v1/courses/{course_id}")
            titles = [c["title"] for c in catalog.json()["items"] if c["id"] == course_id]
            return titles == [expected] and detail.json()["title"] == expected

        async def rename(title: str) -> None:
            response, took = await _timed(
                lambda: courses.patch(
                    f"/api/v1/courses/{course_id}", json={"title": title}, headers=teacher.headers
                )
            )
            answers.append(("rename", response.status_code, round(took, 3)))
            assert response.status_code == 200, response.text

        assert await title_everywhere("Redis outage")  # cached now

        # -- killed: connection refused
        redis.kill9()
        assert await title_everywhere("Redis outage")
        await rename("Redis outage, renamed while killed")
        assert await title_everywhere("Redis outage, renamed while killed")
        intent = await stack.intent(pay, student, course_id)
        webhook = await stack.deliver(pay, await stack.pay_at_stripe(intent))
        assert webhook.status_code == 200, webhook.text
        took, state = await stack.settle(
            course_id, [intent["payment_id"]], [str(student.id)], timeout=20
        )
        stack.assert_exactly_once(state)
        mine = await get("enrollments", "/api/v1/enrollments", headers=student.headers)
        assert [e["course_id"] for e in mine.json()["items"]] == [course_id]
        killed_answers = list(answers)

        redis.start()
        await stack.wait_ready("redis")
        await stack.eventually(
            lambda: title_everywhere("Redis outage, renamed while killed"),
            timeout=10,
            what="catalog after Redis restarted",
        )

        # -- frozen: a partition; Redis comes back with the entries it had
        await stack.eventually(
            lambda: _cached_detail(stack, course_id, title_everywhere),
            timeout=10,
            what="the course page cached again",
        )
        answers.clear()
        redis.pause()
        try:
            await rename("Redis outage, renamed while frozen")
            assert await title_everywhere("Redis outage, renamed while frozen")
        finally:
            redis.resume()
        frozen_answers = list(answers)
        kept = await _cached_detail(stack, course_id)  # the pre-rename entry is still there
        # Give courses' back-off (COURSES_CACHE_RETRY_AFTER=2) time to try Redis again;
        # nothing stale may be served from the entries Redis kept meanwhile.
        stale_seen = 0
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            if not await title_everywhere("Redis outage, renamed while frozen"):
                stale_seen += 1
            await asyncio.sleep(0.25)

    slowest_killed = max(t for _, _, t in killed_answers)
    slowest_frozen = max(t for _, _, t in frozen_answers)
    record(
        scenario="5a. Redis down: catalog, writes and purchases",
        injected=(
            "redis-server SIGKILLed (connection refused) for a catalog/detail read, a rename "
            "and a purchase, restarted empty; then frozen with SIGSTOP (2 s socket "
            "timeouts) for a rename and reads, resumed with its old entries"
        ),
        answers_while_killed=len(killed_answers),
        non_2xx_while_killed=sum(1 for _, s, _ in killed_answers if not 200 <= s < 300),
        slowest_answer_killed_s=slowest_killed,
        answers_while_frozen=len(frozen_answers),
        non_2xx_while_frozen=sum(1 for _, s, _ in frozen_answers if not 200 <= s < 300),
        slowest_answer_frozen_s=slowest_frozen,
        stale_entries_kept_by_redis=kept,
        stale_reads_after_return=stale_seen,
        purchase_while_down=state["students_enrolled"],
        purchase_settled_s=round(took, 2),
    )
    assert all(200 <= s < 300 for _, s, _ in killed_answers + frozen_answers)
    assert slowest_killed < SLOW_ANSWER and slowest_frozen < SLOW_ANSWER
    assert stale_seen == 0


async def _cached_detail(stack, course_id: str, read=None) -> int:
    """How many cached documents of the course Redis holds (after ``read()`` if given)."""
    from redis.asyncio import Redis

    if read is not None:
        await read("Redis outage, renamed while killed")
    client = Redis(port=stack.ports["redis"], socket_timeout=2)
    try:
        return len(await client.keys(f"{stack.cache_prefix}:course:*:{course_id}:*"))
    finally:
        await client.aclose()


# -- the paths that need Redis --------------------------------------------------------------


async def _courses_enroll_with_key(stack, ctx: dict) -> httpx.Response:
    async with stack.client("courses") as courses:
        return await courses.post(
            f"/api/v1/courses/{ctx['free_course']}/enroll",
            headers={**ctx["student"].headers, "Idempotency-Key": ctx["key"]},
        )


async def _payments_intent_with_key(stack, ctx: dict) -> httpx.Response:
    async with stack.client("payments") as pay:
        return await stack.open_intent(
            pay, ctx["student"], ctx["paid_course"], headers={"Idempotency-Key": ctx["key"]}
        )


async def _auth_signin(stack, ctx: dict) -> httpx.Response:
    async with stack.client("auth") as auth:
        return await auth.post(
            "/api/v1/auth/signin", json={"email": ctx["email"], "password": ctx["password"]}
        )


PATHS = {
    "courses POST /enroll + Idempotency-Key": (_courses_enroll_with_key, (200, 201)),
    "payments POST /intents + Idempotency-Key": (_payments_intent_with_key, (200, 201)),
    "auth POST /signin (throttle)": (_auth_signin, (200,)),
}


class UncleanAnswer(AssertionError):
    """A path that needs Redis answered with a 500 or a non-problem error while it was down."""


@pytest.fixture(scope="module")
async def redis_paths_ctx(stack_sync) -> dict:
    stack = stack_sync
    teacher = stack.user("instructor")
    free = await stack.published_course(teacher, price=0, title="Redis free course")
    paid = await stack.published_course(teacher, title="Redis paid course")
    email, password = f"faults-{uuid.uuid4().hex[:12]}@example.com", "faults correct horse 42"
    async with stack.client("auth") as auth:

        async def signed_up() -> bool:
            signup = await auth.post(
                "/api/v1/auth/signup",
                json={"email": email, "password": password, "full_name": "Fault Tester"},
            )
            assert signup.status_code in (201, 409), signup.text
            return (
                signup.status_code == 201
                or (
                    await auth.post(
                        "/api/v1/auth/signin", json={"email": email, "password": password}
                    )
                ).status_code
                == 200
            )

        await stack.eventually(signed_up, timeout=15, what="an auth account")
    return {"free_course": free, "paid_course": paid, "email": email, "password": password}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("courses POST /enroll + Idempotency-Key"),
        pytest.param("payments POST /intents + Idempotency-Key"),
        pytest.param("auth POST /signin (throttle)"),
    ],
)
async def test_redis_down_paths_that_need_it_answer_cleanly(
    stack, record, redis_paths_ctx, path: str
) -> None:
    send, ok = PATHS[path]
    ctx = {**redis_paths_ctx, "student": stack.user("student"), "key": uuid.uuid4().hex}
    redis = stack.proc("redis")
    redis.kill9()
    try:
        down, took_down = await _timed(lambda: send(stack, ctx))
    finally:
        redis.start()
        await stack.wait_ready("redis")
    # Back: the request works (a new key: the first one may or may not have been kept).
    ctx["key"] = uuid.uuid4().hex

    async def works() -> bool:
        return (await send(stack, ctx)).status_code in ok

    recovered = await stack.eventually(works, timeout=15, what=f"{path} after Redis is back")
    replay = None
    if "Idempotency-Key" in path:
        again = await send(stack, ctx)
        replay = again.headers.get("Idempotent-Replayed")
    clean = down.status_code != 500 and (down.status_code < 400 or _is_problem(down))
    record(
        scenario=f"5b. Redis down: {path}",
        injected="redis-server SIGKILLed for one request, then restarted",
        status_while_down=down.status_code,
        problem_json=_is_problem(down),
        body_while_down=down.text[:160],
        seconds_while_down=round(took_down, 3),
        works_again_after_s=round(recovered, 2),
        idempotent_replay_after_return=replay,
        clean=clean,
    )
    if replay is not None:
        assert replay == "true"
    if not clean:
        raise UncleanAnswer(f"{path} while Redis is down: {down.status_code} {down.text[:300]}")
