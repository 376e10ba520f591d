"""Anonymous catalog pages answered from the cache before routing (api/cached_catalog).

test_cache.py shows that every kind of write retires cached pages; these tests show
what the pre-routing lookup serves, what it leaves to the handler, and that a hit is
still logged and counted as the catalog's route.
"""

from __future__ import annotations

from sqlalchemy import update

from courses_service.api.cached_catalog import CATALOG_PARAMETERS
from courses_service.api.deps import courses_context
from courses_service.cache import catalog_key
from courses_service.models import courses
from unpuzzle_common.db import transaction
from unpuzzle_common.observability import HTTP_REQUESTS


def test_the_key_is_the_parameters_as_sent():
    names = {"q", "sort", "limit"}
    assert catalog_key(b"q=a&limit=5", names) == catalog_key(b"limit=5&q=a", names)
    assert catalog_key(b"q=a&utm_source=mail", names) == catalog_key(b"q=a", names), (
        "a parameter the API ignores must not split the cache"
    )
    # A repeated parameter: the API uses the last value, so order matters.
    assert catalog_key(b"sort=price&sort=newest", names) != catalog_key(
        b"sort=newest&sort=price", names
    )
    assert catalog_key(b"q=a+b", names) == catalog_key(b"q=a%20b", names)
    assert catalog_key(b"q=", names) != catalog_key(b"", names)


def test_the_parameter_list_is_the_routes(app):
    operation = app.openapi()["paths"]["/api/v1/courses"]["get"]
    documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert documented == CATALOG_PARAMETERS


async def test_a_hit_never_reaches_the_router(app, client, make_user, make_course):
    teacher = await make_user("instructor")
    await make_course(teacher, title="Served early")
    first = await client.get("/api/v1/courses", params={"limit": 5})
    assert first.status_code == 200

    def no_handler():
        raise AssertionError("the handler ran for a cached page")

    app.dependency_overrides[courses_context] = no_handler
    try:
        again = await client.get("/api/v1/courses", params={"limit": 5, "utm_source": "mail"})
    finally:
        app.dependency_overrides.clear()
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == "application/json"
    assert int(again.headers["content-length"]) == len(first.content)
    assert again.headers["x-request-id"]


async def test_a_hit_is_counted_under_the_catalog_route(client, make_user, make_course):
    teacher = await make_user("instructor")
    await make_course(teacher)
    labels = {"service": "courses", "method": "GET", "route": "/api/v1/courses", "status": "200"}
    await client.get("/api/v1/courses")  # a miss: the handler answers and stores the page
    before = _sample(labels)
    await client.get("/api/v1/courses")  # a hit
    assert _sample(labels) == before + 1


async def test_misses_signed_in_callers_and_bad_queries_go_to_the_handler(
    client, sessions, make_user, make_course
):
    teacher = await make_user("instructor")
    course = await make_course(teacher, title="Original")
    await client.get("/api/v1/courses")
    async with transaction(sessions) as session:  # behind the cache's back
        await session.execute(
            update(courses).where(courses.c.id == course["id"]).values(title="Changed in SQL")
        )
    # A different query is a miss: the handler reads the database.
    other = (await client.get("/api/v1/courses", params={"sort": "price"})).json()
    assert [i["title"] for i in other["items"]] == ["Changed in SQL"]
    # An invalid query is refused each time: nothing was stored for it.
    for _ in range(2):
        bad = await client.get("/api/v1/courses", params={"limit": 0})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"


def _sample(labels: dict[str, str]) -> float:
    for metric in HTTP_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == labels:
                return sample.value
    return 0.0


async def test_a_miss_asks_redis_once_and_stores_the_page(app, client, make_user, make_course):
    teacher = await make_user("instructor")
    await make_course(teacher)
    cache = app.state.courses.cache
    lookups: list[str] = []
    original = cache.catalog_page

    async def counted(digest: str, **options):
        lookups.append(digest)
        return await original(digest, **options)

    cache.catalog_page = counted
    try:
        first = await client.get("/api/v1/courses", params={"sort": "rating"})
        assert len(lookups) == 1, "the handler reuses the pre-routing lookup's key"
        second = await client.get("/api/v1/courses", params={"sort": "rating"})
        assert len(lookups) == 2 and second.content == first.content
    finally:
        del cache.catalog_page
