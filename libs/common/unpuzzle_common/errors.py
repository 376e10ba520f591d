"""RFC 9457 problem+json for every error path.

Domain code raises :class:`Problem` subclasses (plain exceptions, no FastAPI);
:func:`install_problem_handlers` maps them, FastAPI's validation errors, Starlette's
HTTP errors and anything unexpected to ``application/problem+json`` responses.
An unexpected exception answers 500 with no internals; the details go to the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://docs.unpuzzle.dev/problems/"

log = logging.getLogger("unpuzzle.errors")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error with an HTTP meaning. Subclasses fix the status and type slug."""

    status: int = 400
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc


class BadRequest(Problem):
    status, slug = 400, "bad-request"


class Unauthorized(Problem):
    status, slug = 401, "unauthorized"

    def __init__(self, detail: str = "A valid access token is required.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class PaymentRequired(Problem):
    status, slug = 402, "payment-required"


class Forbidden(Problem):
    status, slug = 403, "forbidden"


class NotFound(Problem):
    status, slug = 404, "not-found"


class Conflict(Problem):
    status, slug = 409, "conflict"


class ContentTooLarge(Problem):
    status, slug = 413, "content-too-large"


class ValidationFailed(Problem):
    """422 with ``errors: [{field, message}]`` raised by domain code."""

    status, slug = 422, "validation-failed"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class TooManyRequests(Problem):
    status, slug = 429, "too-many-requests"

    def __init__(self, detail: str, *, retry_after: int, **kw: Any) -> None:
        kw.setdefault("headers", {})["Retry-After"] = str(max(1, int(retry_after)))
        super().__init__(detail, **kw)


class ServiceUnavailable(Problem):
    status, slug = 503, "service-unavailable"


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    """Render a :class:`Problem` as an HTTP response."""
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    # FastAPI locations start with where the value came from: body, query, path, header.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def _validation_message(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "missing":
        return "field required"
    if err.get("type") == "json_invalid":
        return "not valid JSON"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


def _validation_field(err: dict[str, Any]) -> str:
    # Malformed JSON is located at ("body", <character offset>): the field is the body.
    if err.get("type") == "json_invalid":
        return "body"
    return _field_name(tuple(err.get("loc", ())))


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _validation_field(e), "message": _validation_message(e)} for e in exc.errors()
    ]
    if errors and errors[0]["message"] == "field required" and errors[0]["field"] == "body":
        errors[0]["message"] = "a JSON body is required"
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
    return problem_response(ValidationFailed(detail, errors=errors), request)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem = Problem(str(exc.detail) if exc.detail else _TITLES.get(exc.status_code, "Error"))
    problem.status = exc.status_code
    problem.slug = _TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
    problem.headers = dict(exc.headers or {})
    return problem_response(problem, request)


def database_problem(exc: Exception, where: str = "") -> Problem | None:
    """The answer to a database driver error, raised through SQLAlchemy (``DBAPIError``
    wrapping it) or straight from psycopg (:mod:`unpuzzle_common.readpool`): 422 for a
    value the database refuses, 503 for a lost connection, None for anything else (a
    bug: 500). ``where`` names the request in the log line."""
    if isinstance(exc, DBAPIError):
        driver_error: BaseException | None = exc.orig
        data_error = isinstance(exc, DataError)
        lost = exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    elif isinstance(exc, psycopg.Error):
        driver_error = exc
        data_error = isinstance(exc, psycopg.DataError)
        lost = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    else:
        return None
    name = type(driver_error or exc).__name__
    if data_error:
        # A value the database cannot hold (a NUL byte in text, a number out of its
        # column's range) that validation let through: the request's fault, not ours.
        log.info("value refused by the database on %s: %s", where, name)
        return ValidationFailed(
            "A value in the request cannot be stored: it is out of range or contains "
            "characters that are not allowed (such as NUL).",
            errors=[{"field": "request", "message": "value out of range or not allowed"}],
        )
    if lost:
        # The connection was lost (restart, failover, terminated backend): the pool
        # replaces it, so the same request is expected to succeed when retried.
        log.warning("database connection lost on %s: %s", where, name)
        return ServiceUnavailable(
            "The database connection was interrupted; retry the request.",
            headers={"Retry-After": "1"},
        )
    return None


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    problem = database_problem(exc, f"{request.method} {request.url.path}")
    if problem is None:
        return await _on_unexpected(request, exc)
    return problem_response(problem, request)


def unexpected_problem(where: str) -> Problem:
    """Log the exception being handled (call it in an ``except`` block) and return the
    500 problem that answers it, without its details."""
    log.exception("unhandled error on %s", where)
    problem = Problem("An unexpected error occurred; it has been logged.")
    problem.status, problem.slug = 500, "internal-error"
    return problem


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(unexpected_problem(f"{request.method} {request.url.path}"), request)


class UnexpectedErrorMiddleware:
    """Answer an unhandled exception with a 500 problem and keep the connection usable.

    Starlette's own last-resort handler re-raises after answering, which makes the
    server close the connection; a proxy that pooled it (nginx keepalive) then fails
    the next request on it with a 502. This middleware answers and does not re-raise.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            problem = unexpected_problem(f"{scope.get('method')} {scope.get('path')}")
            if started:
                raise  # the answer is half sent: closing the connection is all that is left
            await send_problem(send, problem, scope.get("path"))


async def send_problem(send: Send, problem: Problem, instance: str | None = None) -> None:
    """Answer ``problem`` at the ASGI level (middleware that answers before routing)."""
    body = json.dumps(problem.body(instance)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error path of ``app`` answer problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(psycopg.Error, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(UnexpectedErrorMiddleware)
