"""JSON log lines, request ids, request metrics by route template, body limits."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from pydantic import BaseModel

from unpuzzle_common.errors import PROBLEM_JSON, install_problem_handlers
from unpuzzle_common.observability import (
    BodyLimitMiddleware,
    JsonFormatter,
    RequestContextMiddleware,
    request_id_var,
    user_id_var,
)

# --- JSON logs -------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through JsonFormatter("courses") into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("courses"))
    logger = logging.getLogger(f"test.json.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def lines_of(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_record_is_one_json_object_per_line_with_context(json_log) -> None:
    logger, buffer = json_log
    tracer = TracerProvider().get_tracer("test")
    rid, uid = request_id_var.set("req-42"), user_id_var.set("user-7")
    try:
        with tracer.start_as_current_span("enroll") as span:
            logger.info("enrolled\nin two lines", extra={"course_id": "c-1"})
            logger.warning("second")
        trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        request_id_var.reset(rid)
        user_id_var.reset(uid)

    first, second = lines_of(buffer)
    assert first["service"] == "courses"
    assert first["level"] == "info"
    assert first["message"] == "enrolled\nin two lines"
    assert first["request_id"] == "req-42"
    assert first["trace_id"] == trace_id
    assert first["user_id"] == "user-7"
    assert first["course_id"] == "c-1"
    assert second["level"] == "warning"


def test_context_fields_are_present_but_null_outside_a_request(json_log) -> None:
    logger, buffer = json_log

    logger.info("start-up")

    (line,) = lines_of(buffer)
    assert line["request_id"] is None
    assert line["trace_id"] is None
    assert line["user_id"] is None


def test_exception_stays_inside_its_json_line(json_log) -> None:
    logger, buffer = json_log

    try:
        raise ValueError("bad row")
    except ValueError:
        logger.exception("import failed")

    (line,) = lines_of(buffer)
    assert line["level"] == "error"
    assert "ValueError: bad row" in line["exception"]


# --- request ids and metrics -------------------------------------------------------


class Echo(BaseModel):
    text: str


def build_app(service: str, *, max_bytes: int = 1024) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/courses/{course_id}")
    async def get_course(course_id: str) -> dict:
        return {"id": course_id, "request_id": request_id_var.get()}

    @app.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    app.add_middleware(RequestContextMiddleware, service=service)
    return app


@pytest.fixture
def service(unique_name) -> str:
    return unique_name("obs")


@pytest.fixture
def client(client_for, service: str):
    return client_for(build_app(service, max_bytes=1024))


async def test_sane_incoming_request_id_is_kept_and_returned(client) -> None:
    response = await client.get("/courses/c-1", headers={"X-Request-ID": "gw-abc.123_X"})

    assert response.headers["x-request-id"] == "gw-abc.123_X"
    assert response.json()["request_id"] == "gw-abc.123_X"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("x" * 200, id="too-long"),
        pytest.param("has spaces in it", id="spaces"),
        pytest.param("inject\\nlog", id="backslash"),
        pytest.param("", id="empty"),
    ],
)
async def test_insane_incoming_request_id_is_replaced(client, incoming: str) -> None:
    response = await client.get("/courses/c-1", headers={"X-Request-ID": incoming})

    returned = response.headers["x-request-id"]
    assert returned != incoming
    assert uuid.UUID(returned)
    assert response.json()["request_id"] == returned


async def test_request_without_id_gets_a_fresh_one(client) -> None:
    first = await client.get("/courses/c-1")
    second = await client.get("/courses/c-1")

    assert uuid.UUID(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def requests_total(service: str, route: str, status: str, method: str = "GET") -> float:
    labels = {"service": service, "method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_requests_are_counted_by_route_template_not_raw_path(client, service) -> None:
    before = requests_total(service, "/courses/{course_id}", "200")

    await client.get("/courses/c-1")
    await client.get("/courses/c-2")

    assert requests_total(service, "/courses/{course_id}", "200") == before + 2
    assert requests_total(service, "/courses/c-1", "200") == 0


async def test_unmatched_paths_share_one_label(client, service) -> None:
    await client.get(f"/scan/{uuid.uuid4()}")

    assert requests_total(service, "unmatched", "404") == 1


async def test_request_latency_is_observed_per_route(client, service) -> None:
    await client.get("/courses/c-1")

    count = REGISTRY.get_sample_value(
        "http_request_duration_seconds_count",
        {"service": service, "method": "GET", "route": "/courses/{course_id}"},
    )
    assert count == 1


# --- body limit ------------------------------------------------------------------


def assert_too_large(response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 413
    assert body["title"] == "Content Too Large"
    assert "1024" in body["detail"]


async def test_declared_body_over_the_limit_is_413(client) -> None:
    response = await client.post("/echo", json={"text": "x" * 2000})

    assert_too_large(response)
    assert response.headers["x-request-id"]


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece


@pytest.mark.parametrize("route", ["/raw", "/echo"])
async def test_chunked_body_over_the_limit_is_413(client, route: str) -> None:
    response = await client.post(
        route, content=chunks(5000), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert_too_large(response)


async def test_chunked_body_within_the_limit_is_accepted(client) -> None:
    response = await client.post("/raw", content=chunks(1024))

    assert response.status_code == 200
    assert response.json() == {"bytes": 1024}


async def test_declared_body_within_the_limit_is_accepted(client) -> None:
    response = await client.post("/echo", json={"text": "hello"})

    assert response.status_code == 200
    assert response.json() == {"text": "hello"}


# --- trace context without an OTLP endpoint ------------------------------------------


def build_traced_app(service: str) -> FastAPI:
    from unpuzzle_common.observability import current_trace_id

    app = FastAPI()

    @app.get("/trace")
    async def trace_id() -> dict:
        return {"trace_id": current_trace_id()}

    app.add_middleware(RequestContextMiddleware, service=service, trace_requests=True)
    return app


async def test_each_request_gets_a_trace_id_without_instrumentation(client_for, service) -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())  # what setup_tracing installs
    client = client_for(build_traced_app(service))
    first = (await client.get("/trace")).json()["trace_id"]
    second = (await client.get("/trace")).json()["trace_id"]
    assert first and second and first != second and len(first) == 32


async def test_a_callers_traceparent_is_continued(client_for, service) -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    client = client_for(build_traced_app(service))
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    answer = await client.get("/trace", headers={"traceparent": parent})
    assert answer.json()["trace_id"] == trace_id


async def test_the_access_log_line_carries_the_requests_trace_id(client_for, service) -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter(service))
    access = logging.getLogger("unpuzzle.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        client = client_for(build_traced_app(service))
        seen = (await client.get("/trace")).json()["trace_id"]
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    (line,) = [line for line in lines_of(buffer) if line["service"] == service]
    assert line["trace_id"] == seen and line["route"] == "/trace"
