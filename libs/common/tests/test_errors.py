"""Every error path of an app with install_problem_handlers answers problem+json."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from unpuzzle_common.errors import (
    PROBLEM_JSON,
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    NotFound,
    PaymentRequired,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    install_problem_handlers,
)

SECRET_INTERNALS = "password=hunter2 at db-primary.internal"


class NewCourse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=3)
    price: int = Field(ge=0)


PROBLEMS: dict[str, tuple[type[Problem], int, str]] = {
    "bad-request": (BadRequest, 400, "Bad Request"),
    "unauthorized": (Unauthorized, 401, "Unauthorized"),
    "payment-required": (PaymentRequired, 402, "Payment Required"),
    "forbidden": (Forbidden, 403, "Forbidden"),
    "not-found": (NotFound, 404, "Not Found"),
    "conflict": (Conflict, 409, "Conflict"),
    "content-too-large": (ContentTooLarge, 413, "Content Too Large"),
    "validation-failed": (ValidationFailed, 422, "Unprocessable Content"),
    "service-unavailable": (ServiceUnavailable, 503, "Service Unavailable"),
}


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/problems/{slug}")
    async def raise_problem(slug: str) -> None:
        raise PROBLEMS[slug][0](f"detail of {slug}")

    @app.get("/throttled")
    async def throttled() -> None:
        raise TooManyRequests("Slow down.", retry_after=30)

    @app.post("/courses", status_code=201)
    async def create_course(course: NewCourse) -> NewCourse:
        return course

    @app.get("/courses")
    async def list_courses(limit: int = 20) -> list[str]:
        return []

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_INTERNALS)

    @app.get("/database-gone")
    async def database_gone() -> None:
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    return app


@pytest.fixture
def client(client_for):
    return client_for(build_app(), raise_app_exceptions=False)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("slug", list(PROBLEMS))
async def test_problem_subclass_answers_its_status_as_problem_json(client, slug: str) -> None:
    _, status, title = PROBLEMS[slug]

    body = assert_problem(await client.get(f"/problems/{slug}"), status)

    assert body["type"].endswith("/" + slug)
    assert body["title"] == title
    assert body["detail"] == f"detail of {slug}"


async def test_unauthorized_asks_for_a_bearer_token(client) -> None:
    response = await client.get("/problems/unauthorized")

    assert response.headers["www-authenticate"] == "Bearer"


async def test_too_many_requests_carries_retry_after(client) -> None:
    response = await client.get("/throttled")

    assert_problem(response, 429)
    assert response.headers["retry-after"] == "30"


def test_retry_after_is_at_least_one_second() -> None:
    assert TooManyRequests("soon", retry_after=0).headers["Retry-After"] == "1"


async def test_invalid_field_is_422_with_field_errors(client) -> None:
    response = await client.post("/courses", json={"title": "ab", "price": -1})

    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"title", "price"}
    assert all(e["message"] for e in body["errors"])


async def test_unknown_field_is_422_named_unknown_field(client) -> None:
    response = await client.post("/courses", json={"title": "Rust", "price": 0, "admin": True})

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "admin", "message": "unknown field"}]


async def test_missing_field_is_422_field_required(client) -> None:
    response = await client.post("/courses", json={"title": "Rust"})

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "price", "message": "field required"}]


async def test_missing_body_is_422_asking_for_a_json_body(client) -> None:
    response = await client.post("/courses")

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "body", "message": "a JSON body is required"}]


async def test_malformed_json_is_422_on_the_body(client) -> None:
    response = await client.post(
        "/courses", content=b'{"title": "Rust",', headers={"content-type": "application/json"}
    )

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "body", "message": "not valid JSON"}]


async def test_bad_query_parameter_is_422_named_after_the_parameter(client) -> None:
    response = await client.get("/courses", params={"limit": "many"})

    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["limit"]


async def test_unknown_route_is_404_problem(client) -> None:
    body = assert_problem(await client.get("/no/such/route"), 404)

    assert body["title"] == "Not Found"


async def test_wrong_method_is_405_problem_with_allow(client) -> None:
    response = await client.delete("/courses")

    body = assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert response.headers["allow"]


async def test_unexpected_exception_is_500_problem_without_internals(
    client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="unpuzzle.errors"):
        response = await client.get("/boom")

    body = assert_problem(response, 500)
    assert SECRET_INTERNALS not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert body["title"] == "Internal Server Error"
    # The details are not lost: they go to the log.
    assert any(r.exc_info and SECRET_INTERNALS in str(r.exc_info[1]) for r in caplog.records)


def test_domain_validation_error_names_its_field() -> None:
    problem = ValidationFailed.field("currency", "must be ISO 4217 lower case")

    body = problem.body()

    assert body["status"] == 422
    assert body["errors"] == [{"field": "currency", "message": "must be ISO 4217 lower case"}]


async def test_a_lost_database_connection_is_503_with_retry_after(client) -> None:
    response = await client.get("/database-gone")
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert "SELECT" not in response.text and "retry" in body["detail"]


async def test_an_unexpected_error_is_answered_without_re_raising(client_for) -> None:
    # Re-raising after the 500 makes the server drop the connection, and a proxy that
    # pooled it fails the next request with a 502 (found by fuzzing through nginx).
    strict = client_for(build_app(), raise_app_exceptions=True)
    response = await strict.get("/boom")
    assert_problem(response, 500)


async def test_a_value_the_database_refuses_is_422_not_500(client_for) -> None:
    from sqlalchemy.exc import DataError

    app = build_app()

    @app.get("/nul")
    async def nul() -> None:
        raise DataError("INSERT", {}, ValueError("text fields cannot contain NUL (0x00) bytes"))

    response = await client_for(app, raise_app_exceptions=True).get("/nul")
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "request"


async def test_driver_errors_from_raw_psycopg_reads_map_like_sqlalchemy_ones(client_for) -> None:
    # The ReadPool (unpuzzle_common.readpool) raises psycopg's errors unwrapped.
    import psycopg
    from sqlalchemy import String, bindparam, select

    from unpuzzle_common.readpool import ReadPool, compile_query
    from unpuzzle_common.testing import database_admin_url

    app = build_app()
    reads = ReadPool(database_admin_url(), max_size=1)
    echo = compile_query("echo", select(bindparam("text", type_=String)))

    @app.get("/echo")
    async def read(text: str) -> list[str]:
        return [row[0] for row in await reads.fetch(echo, {"text": text})]

    @app.get("/driver-gone")
    async def driver_gone() -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    await reads.open()
    try:
        client = client_for(app, raise_app_exceptions=True)
        assert (await client.get("/echo", params={"text": "ab"})).json() == ["ab"]
        body = assert_problem(await client.get("/echo", params={"text": "a\x00b"}), 422)
        assert body["errors"][0]["field"] == "request"
        gone = await client.get("/driver-gone")
        assert_problem(gone, 503)
        assert gone.headers["retry-after"] == "1"
    finally:
        await reads.close()
