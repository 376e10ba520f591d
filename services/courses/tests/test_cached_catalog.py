"""Anonymous catalog pages answered before routing (api/cached_catalog): cache hits,
and misses built there with the handler's own steps.

test_cache.py shows that every kind of write retires cached pages; these tests show
what the pre-routing path serves, that it answers exactly what the handler would, what
it leaves to the handler, and that its answers are still logged and counted as the
catalog's route.
"""

from __future__ import annotations

import json
import logging
import uuid

import psycopg
import pytest
from sqlalchemy import update

from courses_service.api.cached_catalog import CATALOG_PARAMETERS
from courses_service.api.deps import courses_context
from courses_service.cache import catalog_key
from courses_service.models import courses
from unpuzzle_common.db import transaction
from unpuzzle_common.observability import HTTP_REQUESTS, JsonFormatter
from unpuzzle_common.pagination import encode_cursor


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
    await client.get("/api/v1/courses")  # a miss: built and stored before routing
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
    # A different query is a miss: it is read from the database.
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
        assert len(lookups) == 1, "a miss is stored under the key its lookup made"
        second = await client.get("/api/v1/courses", params={"sort": "rating"})
        assert len(lookups) == 2 and second.content == first.content
    finally:
        del cache.catalog_page


@pytest.fixture
def handler_calls(app):
    """The requests that reached a handler since (every route depends on the context)."""
    calls: list[str] = []

    def counted():
        calls.append("handler")
        return app.state.courses

    app.dependency_overrides[courses_context] = counted
    yield calls
    app.dependency_overrides.clear()


async def test_an_anonymous_miss_is_built_before_routing_and_stored(
    app, client, make_user, make_course, handler_calls
):
    teacher = await make_user("instructor")
    await make_course(teacher, title="Built early")
    cache = app.state.courses.cache
    stored: list[str] = []
    original = cache.store_catalog_page

    async def store(key, value, shown):
        stored.append(key)
        await original(key, value, shown)

    cache.store_catalog_page = store
    handler_calls.clear()  # building the course went through handlers
    try:
        first = await client.get("/api/v1/courses", params={"sort": "price", "limit": 3})
        again = await client.get("/api/v1/courses", params={"sort": "price", "limit": 3})
    finally:
        del cache.store_catalog_page
    assert first.status_code == 200
    assert [i["title"] for i in first.json()["items"]] == ["Built early"]
    assert handler_calls == [], "neither the miss nor the hit reached the handler"
    assert len(stored) == 1 and again.content == first.content


PAGE_QUERIES: list[dict | list] = [
    {},
    {"sort": "popular", "limit": 2},
    {"sort": "rating"},
    {"sort": "price", "price_min": 0, "price_max": 5000},
    {"free": "true"},
    {"free": "false", "sort": "newest"},
    {"q": "python"},
    {"q": "pyth", "sort": "price"},
    {"category": "no-such-category"},
    [("limit", "1"), ("sort", "price"), ("sort", "newest")],  # the last one counts
]


async def test_the_pre_routing_page_is_the_handlers_page(app, client, make_user, make_course):
    teacher = await make_user("instructor")
    for n, (title, price) in enumerate(
        [("Python basics", 0), ("Advanced Python", 4900), ("Drawing", 1500), ("Go", 9900)]
    ):
        await make_course(teacher, title=title, price=price, lessons=1 + n % 2)
    # A student whose catalog is the anonymous one goes through the handler, which
    # builds the same page (and reads the cache under the same key).
    student = await make_user("student")
    cache = app.state.courses.cache
    for params in PAGE_QUERIES:
        for path in ("handler", "middleware", "handler"):
            await cache.invalidate_everything()  # both build it, neither reads it
            headers = student.headers if path == "handler" else {}
            response = await client.get("/api/v1/courses", params=params, headers=headers)
            assert response.status_code == 200, (params, response.text)
            if path == "handler":
                expected = response.content
            else:
                assert response.content == expected, params
    # Pages after the first, from each path's cursors.
    first = (await client.get("/api/v1/courses", params={"limit": 1, "sort": "price"})).json()
    cursor = first["next_cursor"]
    await cache.invalidate_everything()
    anonymous = await client.get(
        "/api/v1/courses", params={"limit": 1, "sort": "price", "cursor": cursor}
    )
    await cache.invalidate_everything()
    signed_in = await client.get(
        "/api/v1/courses",
        params={"limit": 1, "sort": "price", "cursor": cursor},
        headers=student.headers,
    )
    assert anonymous.status_code == 200 and anonymous.content == signed_in.content
    assert anonymous.json()["items"][0]["title"] == "Drawing"


BAD_QUERIES = [
    ({"limit": 0}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"free": "maybe"}, "free"),
    ({"sort": "cheapest"}, "sort"),
    ({"price_min": 10, "price_max": 5}, "price_max"),
    ({"price_max": -1}, "price_max"),
    ({"instructor_id": "nobody"}, "instructor_id"),
    ({"cursor": "not-base64!!"}, "cursor"),
    ({"q": "x" * 201}, "q"),
]


@pytest.mark.parametrize(("params", "field"), BAD_QUERIES)
async def test_an_invalid_query_is_left_to_the_handler(client, handler_calls, params, field):
    response = await client.get("/api/v1/courses", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any(field in e["field"] for e in response.json()["errors"]), response.json()
    assert handler_calls == ["handler"]


async def test_a_cursor_of_another_sort_is_left_to_the_handler(
    client, make_user, make_course, handler_calls
):
    teacher = await make_user("instructor")
    await make_course(teacher, title="One")
    await make_course(teacher, title="Two")
    by_price = (await client.get("/api/v1/courses", params={"limit": 1, "sort": "price"})).json()
    handler_calls.clear()
    response = await client.get(
        "/api/v1/courses", params={"sort": "newest", "cursor": by_price["next_cursor"]}
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "cursor"
    assert handler_calls == ["handler"]


async def test_a_value_the_database_refuses_is_a_422_there_too(client, handler_calls):
    response = await client.get("/api/v1/courses", params={"category": "a\x00b"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_out_of_range_cursor_key_is_a_422_both_ways(client, make_user):
    student = await make_user("student")
    for sort in ("price", "popular"):
        cursor = encode_cursor({"s": sort, "k": [3_000_000_000, str(uuid.uuid4())]})
        for headers in ({}, student.headers):
            response = await client.get(
                "/api/v1/courses", params={"sort": sort, "cursor": cursor}, headers=headers
            )
            assert response.status_code == 422, (sort, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"


class _Formatted(logging.Handler):
    """Formats each record as the service's log line when it is emitted (the request id
    comes from the request's context, which is gone by the time a test looks)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("courses"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_an_unexpected_error_before_routing_is_a_logged_500(app, client, handler_calls):
    reader = app.state.courses.reader
    logged = _Formatted()
    logging.getLogger("unpuzzle.errors").addHandler(logged)

    async def broken(query, values=None):
        raise RuntimeError("a bug in building the page")

    labels = {"service": "courses", "method": "GET", "route": "/api/v1/courses", "status": "500"}
    before = _sample(labels)
    reader.fetch = broken
    try:
        response = await client.get("/api/v1/courses", params={"sort": "price"})
    finally:
        del reader.fetch
        logging.getLogger("unpuzzle.errors").removeHandler(logged)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "a bug" not in response.text
    assert response.headers["x-request-id"]
    assert _sample(labels) == before + 1, "counted under the catalog's route"
    [line] = [line for line in logged.lines if "a bug" in line.get("exception", "")]
    assert line["request_id"] == response.headers["x-request-id"]
    assert handler_calls == []


async def test_a_lost_database_is_a_503_before_routing_too(app, client, handler_calls):
    reader = app.state.courses.reader

    async def lost(query, values=None):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    reader.fetch = lost
    try:
        response = await client.get("/api/v1/courses", params={"sort": "rating"})
    finally:
        del reader.fetch
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json()["instance"] == "/api/v1/courses"
    assert handler_calls == [], "answered where it failed, not run again by the handler"
