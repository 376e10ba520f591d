"""Caching: every kind of write is visible on the next read, and Redis is optional.

Each test first reads anonymously (filling the cache), then writes, then reads again:
a stale answer fails the test. ``test_reads_are_served_from_the_cache`` shows that
those reads are cached at all, so the others test the invalidation, not a bypass.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from courses_service.cache import CourseCache, Touched
from courses_service.main import create_app
from courses_service.models import courses
from unpuzzle_common.db import transaction
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import MediaProcessed, PaymentSucceeded, UserUpdated
from unpuzzle_common.testing import REDIS_URL


@pytest.fixture
def anonymous_view(client):
    """What an anonymous visitor sees of one course: its catalog item and its page."""

    async def view(course_id: str) -> tuple[dict | None, dict | None]:
        listed = (await client.get("/api/v1/courses", params={"limit": 100})).json()["items"]
        item = next((i for i in listed if i["id"] == course_id), None)
        detail = await client.get(f"/api/v1/courses/{course_id}")
        return item, (detail.json() if detail.status_code == 200 else None)

    return view


async def test_reads_are_served_from_the_cache(sessions, make_user, make_course, anonymous_view):
    teacher = await make_user("instructor")
    course = await make_course(teacher, title="Cached")
    await anonymous_view(course["id"])
    async with transaction(sessions) as session:  # behind the service's back: no invalidation
        await session.execute(
            update(courses).where(courses.c.id == course["id"]).values(title="Changed in SQL")
        )
    item, detail = await anonymous_view(course["id"])
    assert item["title"] == detail["title"] == "Cached"


async def test_publish_and_unpublish_show_at_once(client, make_user, make_course, anonymous_view):
    teacher = await make_user("instructor")
    course = await make_course(teacher, publish=False)
    assert await anonymous_view(course["id"]) == (None, None)
    await client.post(f"/api/v1/courses/{course['id']}/publish", headers=teacher.headers)
    item, detail = await anonymous_view(course["id"])
    assert item is not None and detail is not None
    await client.post(f"/api/v1/courses/{course['id']}/unpublish", headers=teacher.headers)
    assert await anonymous_view(course["id"]) == (None, None)


async def test_edits_show_at_once(client, make_user, make_course, anonymous_view):
    teacher = await make_user("instructor")
    course = await make_course(teacher, title="Before")
    await anonymous_view(course["id"])
    await client.patch(
        f"/api/v1/courses/{course['id']}",
        json={"title": "After", "price": 700},
        headers=teacher.headers,
    )
    item, detail = await anonymous_view(course["id"])
    assert (item["title"], item["price"]) == (detail["title"], detail["price"]) == ("After", 700)


async def test_structure_changes_show_at_once(client, make_user, make_course, anonymous_view):
    teacher = await make_user("instructor")
    course = await make_course(teacher, lessons=1)
    await anonymous_view(course["id"])
    section = course["sections"][0]["id"]
    await client.post(
        f"/api/v1/courses/{course['id']}/sections/{section}/lessons",
        json={"title": "Second", "duration_seconds": 40},
        headers=teacher.headers,
    )
    item, detail = await anonymous_view(course["id"])
    assert (item["lesson_count"], item["total_duration"]) == (2, 100)
    assert [lesson["title"] for lesson in detail["sections"][0]["lessons"]] == [
        "Lesson 1",
        "Second",
    ]


async def test_reviews_show_at_once(client, make_user, make_course, enroll, anonymous_view):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher)
    await enroll(student, course)
    await anonymous_view(course["id"])
    await client.post(
        f"/api/v1/courses/{course['id']}/reviews", json={"rating": 3}, headers=student.headers
    )
    item, detail = await anonymous_view(course["id"])
    assert (item["rating_avg"], item["rating_count"]) == (3.0, 1)
    assert (detail["rating_avg"], detail["rating_count"]) == (3.0, 1)


async def test_enrollment_counts_show_at_once(
    client, make_user, make_course, enroll, anonymous_view, consumer
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    buyer = await make_user("student")
    free = await make_course(teacher, title="Free")
    paid = await make_course(teacher, title="Paid", price=1000)
    await anonymous_view(free["id"])
    await anonymous_view(paid["id"])
    await enroll(student, free)
    item, detail = await anonymous_view(free["id"])
    assert item["enrollment_count"] == detail["enrollment_count"] == 1
    payment = PaymentSucceeded(
        payment_id=uuid.uuid4(),
        user_id=buyer.id,
        course_id=uuid.UUID(paid["id"]),
        amount=1000,
        currency="usd",
    )
    await consumer("payments").apply(Envelope.new(payment, source="payments"))
    item, detail = await anonymous_view(paid["id"])
    assert item["enrollment_count"] == detail["enrollment_count"] == 1


async def test_events_from_other_services_show_at_once(
    make_user, make_course, client, anonymous_view, consumer
):
    teacher = await make_user("instructor", full_name="Old Name")
    course = await make_course(teacher, lessons=0, publish=False)
    section = (
        await client.post(
            f"/api/v1/courses/{course['id']}/sections", json={"title": "S"}, headers=teacher.headers
        )
    ).json()
    media_id = uuid.uuid4()
    await client.post(
        f"/api/v1/courses/{course['id']}/sections/{section['id']}/lessons",
        json={"title": "Video", "media_id": str(media_id)},
        headers=teacher.headers,
    )
    await client.post(f"/api/v1/courses/{course['id']}/publish", headers=teacher.headers)
    await anonymous_view(course["id"])
    renamed = UserUpdated(
        user_id=teacher.id, email="t@example.com", full_name="New Name", roles=["instructor"]
    )
    await consumer("auth").apply(Envelope.new(renamed, source="auth"))
    processed = MediaProcessed(
        media_id=media_id, owner_id=teacher.id, content_type="video/mp4", duration=90.0
    )
    await consumer("media").apply(Envelope.new(processed, source="media"))
    item, detail = await anonymous_view(course["id"])
    assert item["instructor"]["full_name"] == detail["instructor"]["full_name"] == "New Name"
    assert item["total_duration"] == detail["total_duration"] == 90


async def test_delete_shows_at_once(client, make_user, make_course, anonymous_view):
    teacher = await make_user("instructor")
    course = await make_course(teacher)
    await anonymous_view(course["id"])
    await client.get(f"/api/v1/courses/{course['slug']}")
    await client.delete(f"/api/v1/courses/{course['id']}", headers=teacher.headers)
    assert await anonymous_view(course["id"]) == (None, None)
    assert (await client.get(f"/api/v1/courses/{course['slug']}")).status_code == 404


async def test_students_catalog_uses_the_public_cache_but_drafts_do_not(
    client, make_user, make_course, sessions
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    await make_course(teacher, title="Draft", publish=False)
    course = await make_course(teacher, title="Shared")
    await client.get("/api/v1/courses")  # fills the anonymous page
    async with transaction(sessions) as session:
        await session.execute(
            update(courses).where(courses.c.id == course["id"]).values(title="Changed in SQL")
        )
    as_student = (await client.get("/api/v1/courses", headers=student.headers)).json()
    assert as_student["items"][0]["title"] == "Shared", "a plain student gets the public page"
    as_owner = (await client.get("/api/v1/courses", headers=teacher.headers)).json()
    titles = {item["id"]: item["title"] for item in as_owner["items"]}
    assert titles[course["id"]] == "Changed in SQL", "a catalog with own drafts is not cached"


# -- Redis down ---------------------------------------------------------------------------


@pytest.fixture
async def client_without_redis(settings, mint):
    from unpuzzle_common.testing import truncate_schema

    truncate_schema("courses")
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    application = create_app(dead, token_verifier=mint.verifier())
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://courses.test") as c:
            yield c, application


async def test_service_works_uncached_when_redis_is_down(client_without_redis, mint):
    client, _application = client_without_redis
    teacher_id, student_id = uuid.uuid4(), uuid.uuid4()
    teacher = {"Authorization": f"Bearer {mint.token(teacher_id, ('instructor',))}"}
    student = {"Authorization": f"Bearer {mint.token(student_id, ('student',))}"}
    course = (
        await client.post("/api/v1/courses", json={"title": "No Redis"}, headers=teacher)
    ).json()
    base = f"/api/v1/courses/{course['id']}"
    section = (await client.post(f"{base}/sections", json={"title": "S"}, headers=teacher)).json()
    lesson = await client.post(
        f"{base}/sections/{section['id']}/lessons", json={"title": "L"}, headers=teacher
    )
    assert lesson.status_code == 201
    assert (await client.post(f"{base}/publish", headers=teacher)).status_code == 200
    for _ in range(2):
        listed = await client.get("/api/v1/courses")
        assert [i["title"] for i in listed.json()["items"]] == ["No Redis"]
        assert (await client.get(f"/api/v1/courses/{course['slug']}")).status_code == 200
    assert (await client.post(f"{base}/enroll", headers=student)).status_code == 201
    review = await client.post(f"{base}/reviews", json={"rating": 5}, headers=student)
    assert review.status_code == 201
    detail = (await client.get(base)).json()
    assert (detail["enrollment_count"], detail["rating_count"]) == (1, 1)
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"


async def test_an_invalidation_lost_while_redis_was_down_retires_every_entry():
    prefix = f"courses-test-{uuid.uuid4().hex[:10]}"
    live = Redis.from_url(REDIS_URL)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        cache = CourseCache(live, prefix=prefix, catalog_ttl=60, course_ttl=60, retry_after=0)
        course_id = uuid.uuid4()
        _, key = await cache.course_document(course_id)
        await cache.store_course_document(key, b'{"title": "old"}')
        assert (await cache.course_document(course_id))[0] == b'{"title": "old"}'
        cache._redis = dead  # Redis unreachable while a write happens
        await cache.invalidate(Touched(listing={course_id}))
        cache._redis = live  # back again: the entry written before must not be served
        assert (await cache.course_document(course_id))[0] is None
    finally:
        await live.aclose()
        await dead.aclose()


# -- enrollments retire only what they change ----------------------------------------------


async def test_an_enrollment_keeps_pages_that_do_not_show_the_course(
    client, sessions, make_user, make_course, enroll
):
    teacher = await make_user("instructor")
    older = await make_course(teacher, title="Older")
    newer = await make_course(teacher, title="Newer")
    first = (await client.get("/api/v1/courses", params={"limit": 1})).json()
    assert [i["id"] for i in first["items"]] == [newer["id"]]
    async with transaction(sessions) as session:  # behind the service's back: no invalidation
        await session.execute(
            update(courses).where(courses.c.id == newer["id"]).values(title="Changed in SQL")
        )
    await enroll(await make_user("student"), older)
    again = (await client.get("/api/v1/courses", params={"limit": 1})).json()
    assert again["items"][0]["title"] == "Newer", "a page without the course stays cached"
    both = (await client.get("/api/v1/courses", params={"limit": 2})).json()
    counts = {i["id"]: i["enrollment_count"] for i in both["items"]}
    assert counts[older["id"]] == 1


async def test_an_enrollment_reorders_popular_pages_at_once(client, make_user, make_course, enroll):
    teacher = await make_user("instructor")
    leader = await make_course(teacher, title="Leader")
    chaser = await make_course(teacher, title="Chaser")
    await enroll(await make_user("student"), leader)
    top = (await client.get("/api/v1/courses", params={"sort": "popular", "limit": 1})).json()
    assert [i["id"] for i in top["items"]] == [leader["id"]]
    for _ in range(2):  # the chaser is on no cached popular page, yet it must show first
        await enroll(await make_user("student"), chaser)
    top = (await client.get("/api/v1/courses", params={"sort": "popular", "limit": 1})).json()
    assert [(i["id"], i["enrollment_count"]) for i in top["items"]] == [(chaser["id"], 2)]


async def test_a_page_read_before_a_count_changed_is_never_served_after():
    prefix = f"courses-test-{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(REDIS_URL)
    try:
        cache = CourseCache(redis, prefix=prefix, catalog_ttl=60, course_ttl=60)
        course_id = uuid.uuid4()
        _, key = await cache.catalog_page("digest")
        await cache.store_catalog_page(key, b'{"items": []}', [(course_id, 3)])
        assert (await cache.catalog_page("digest"))[0] == b'{"items": []}'
        # An enrollment commits: the row is at version 4 now.
        await cache.invalidate(Touched(counts={course_id: 4}))
        assert (await cache.catalog_page("digest"))[0] is None
        # A slow reader that read version 3 before that commit stores its page late:
        # the row-version key is not lowered, so the page is never served.
        _, key = await cache.catalog_page("digest")
        await cache.store_catalog_page(key, b'{"items": ["old"]}', [(course_id, 3)])
        assert (await cache.catalog_page("digest"))[0] is None
        assert await redis.get(f"{prefix}:course:{course_id}:rv") == b"4"
        # A page read after the commit is served.
        await cache.store_catalog_page(key, b'{"items": ["new"]}', [(course_id, 4)])
        assert (await cache.catalog_page("digest"))[0] == b'{"items": ["new"]}'
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
