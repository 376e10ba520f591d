"""Logs, traces and metrics every service shares.

- JSON log lines carrying ``service``, ``level``, ``request_id``, ``trace_id``, ``user_id``.
- :class:`RequestContextMiddleware`: request id (kept from ``X-Request-ID`` when sane),
  access log, Prometheus request count and latency by route template and status.
- :func:`setup_tracing`: OpenTelemetry with FastAPI/httpx/SQLAlchemy/Redis
  instrumentation when an OTLP endpoint is configured; without one, trace context only
  (one span per request and per event: trace ids in logs and events, nothing exported).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def current_trace_id() -> str | None:
    """Hex trace id of the active span, if any."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra attributes given to the logger are kept."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
            "trace_id": current_trace_id(),
            "user_id": user_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"


class RequestContextMiddleware:
    """Request id, access log and HTTP metrics for every request (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, service: str, trace_requests: bool = False) -> None:
        """``trace_requests``: open a server span per request here (when no tracing
        instrumentation does), continuing a ``traceparent`` the caller sent."""
        self.app = app
        self.service = service
        self.log = logging.getLogger("unpuzzle.access")
        self.tracer = trace.get_tracer("unpuzzle.requests") if trace_requests else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = scope_header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        )
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)  # set once the token is verified
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        span_scope = self._server_span(scope) if self.tracer else contextlib.nullcontext()
        with span_scope:  # the access log line below carries the request's trace id
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started)
                request_id_var.reset(rid_token)
                user_id_var.reset(uid_token)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        """Metrics and the access log line of one answered request."""
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
        HTTP_LATENCY.labels(self.service, method, template).observe(elapsed)
        if template not in {"/healthz", "/readyz", "/metrics"}:
            self.log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "route": template,
                    "method": method,
                },
            )

    def _server_span(self, scope: Scope) -> contextlib.AbstractContextManager[Any]:
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in (b"traceparent", b"tracestate")
        }
        assert self.tracer is not None
        return self.tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}",
            context=propagate.extract(carrier) if carrier else None,
            kind=trace.SpanKind.SERVER,
        )


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 problem+json."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = scope_header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            await _send_too_large(send, self.max_bytes)
            return
        received = 0
        exceeded = False
        started = False  # a response start went out (the app's or our 413)
        replaced = False  # the app's answer was swapped for the 413

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks may turn the error raised from receive() into an answer of their
            # own (FastAPI answers 400 "error parsing the body"): send the 413 instead.
            nonlocal started, replaced
            if replaced:
                return
            if exceeded and not started:
                if message["type"] == "http.response.start":
                    started = replaced = True
                    await _send_too_large(send, self.max_bytes)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if replaced:
                return  # the 413 went out; the error only followed from the refused body
            if not exceeded or started:
                raise
            await _send_too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _send_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "https://docs.unpuzzle.dev/problems/content-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"The request body is larger than {limit} bytes.",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def scope_header(scope: Scope, name: bytes) -> str | None:
    """First value of a request header in an ASGI scope (``name`` lower-case)."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


_tracing_configured = False
_instrumented = False


def setup_tracing(service: str, otlp_endpoint: str | None) -> bool:
    """Install a tracer provider once per process. True: spans are recorded and exported.

    With an OTLP endpoint, spans are exported and FastAPI, SQLAlchemy, Redis and httpx
    are instrumented; the sampler is OpenTelemetry's standard ``OTEL_TRACES_SAMPLER`` /
    ``OTEL_TRACES_SAMPLER_ARG`` (default: every trace). Without one, the libraries are not
    instrumented — that cost a quarter of a cached catalog request (bench/RESULTS.md)
    to build spans nobody receives — but trace context still flows: each request gets
    one server span (:class:`RequestContextMiddleware`), so its log lines and the
    events it causes share a trace id, and consumers continue it.
    """
    global _tracing_configured, _instrumented
    if _tracing_configured:
        return _instrumented
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({"service.name": service})
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        HTTPXClientInstrumentor().instrument()
        RedisInstrumentor().instrument()
    else:
        # No processor: the few spans made (one per request, one per event published
        # or handled) carry trace ids into logs and events and are then dropped.
        provider = TracerProvider(resource=resource)
    trace.set_tracer_provider(provider)
    _instrumented = bool(otlp_endpoint)
    _tracing_configured = True
    return _instrumented


def tracing_instrumented() -> bool:
    """Whether :func:`setup_tracing` turned the libraries' instrumentation on."""
    return _instrumented


def instrument_engine(engine: Any) -> None:
    """Trace SQL statements of an async engine (instrumenting its sync core), when traced."""
    if not _instrumented:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine)
