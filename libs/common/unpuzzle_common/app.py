"""The FastAPI application shell every service shares.

:func:`create_service_app` wires problem+json errors, request ids, access logs,
metrics, body limits, ``Idempotency-Key`` and the ``/healthz`` ``/readyz``
``/metrics`` endpoints. :class:`ServiceRuntime` owns the connections a service
process holds (database, Redis, NATS, token verifier) for its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from nats.aio.client import Client as NATS
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.middleware import Middleware
from starlette.types import Scope

from unpuzzle_common.auth import JWKSKeySource, TokenVerifier
from unpuzzle_common.config import ServiceSettings
from unpuzzle_common.db import create_engine, ping, session_factory
from unpuzzle_common.errors import Unauthorized, install_problem_handlers
from unpuzzle_common.idempotency import IdempotencyMiddleware
from unpuzzle_common.observability import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    configure_logging,
    instrument_engine,
    scope_header,
    setup_tracing,
)

log = logging.getLogger("unpuzzle.app")

DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pool", ["service"]
)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

#: Seconds start-up waits for the first NATS connection before going on without it.
NATS_STARTUP_WAIT = 3.0


@dataclass
class ServiceRuntime:
    """Connections one service process holds open while it runs."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    nats: NATS | None = None
    closers: list[Callable[[], Any]] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: ServiceSettings, *, with_nats: bool = True
    ) -> AsyncIterator[ServiceRuntime]:
        """Open the database pool, Redis and (optionally) NATS; close them on exit."""
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            application_name=settings.service_name,
        )
        instrument_engine(engine)
        DB_POOL_CHECKED_OUT.labels(settings.service_name).set_function(engine.pool.checkedout)
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        runtime = cls(
            settings=settings, engine=engine, sessions=session_factory(engine), redis=redis
        )
        connecting: asyncio.Task[None] | None = None
        if with_nats:
            runtime.nats, connecting = await _connect_nats_in_background(settings)
        try:
            yield runtime
        finally:
            for close in reversed(runtime.closers):
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            if connecting is not None and not connecting.done():
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
            if runtime.nats is not None and not runtime.nats.is_closed:
                await runtime.nats.close()
            await redis.aclose()
            await engine.dispose()

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok" or why not."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(ping(self.engine), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.redis.ping(), 2)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        if self.nats is not None:
            checks["nats"] = "ok" if self.nats.is_connected else "unreachable"
        return checks


async def _connect_nats_in_background(
    settings: ServiceSettings,
) -> tuple[NATS, asyncio.Task[None]]:
    """Connect to NATS, retrying forever; the service starts even while NATS is down.

    Start-up waits up to :data:`NATS_STARTUP_WAIT` seconds so a reachable NATS is
    connected before the service uses it; after that the connection attempts go on in
    the returned task (nats-py's ``connect`` only returns once it has a server).
    """
    client = NATS()

    async def on_error(exc: Exception) -> None:
        log.warning("NATS: %s", str(exc) or type(exc).__name__)

    async def connect() -> None:
        await client.connect(
            settings.nats_url,
            name=settings.service_name,
            error_cb=on_error,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            allow_reconnect=True,
        )

    task = asyncio.create_task(connect(), name=f"nats-connect:{settings.service_name}")
    task.add_done_callback(_report_connect_failure)
    done, _ = await asyncio.wait({task}, timeout=NATS_STARTUP_WAIT)
    if not done:
        log.warning("NATS not reachable at start-up; still trying, readiness will say so")
    return client, task


def _report_connect_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("NATS connection abandoned: %r", task.exception())


def default_token_verifier(settings: ServiceSettings) -> TokenVerifier:
    """Verifier backed by the auth service's JWKS (what every service but auth uses)."""
    return TokenVerifier(
        JWKSKeySource(settings.jwks_url), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    description: str,
    lifespan: Lifespan,
    inner_middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """A FastAPI app with everything the platform's services share.

    The ``lifespan`` must set ``app.state.runtime`` (a :class:`ServiceRuntime`) and
    ``app.state.token_verifier`` before yielding. ``inner_middleware`` (outermost
    first) runs inside the request id, access log and metrics middleware and before
    the body limit, idempotency and routing: a service's own pre-routing answers (a
    cache) are still logged and counted.
    """
    configure_logging(settings.service_name, settings.log_level)
    if settings.freeze_heap_after_startup:
        lifespan = _freezing_heap_after(lifespan)
    traced = setup_tracing(settings.service_name, settings.otlp_endpoint)
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        # FastAPI's own OpenTelemetry middleware would make a second server span (and
        # metrics and logs) per request beside FastAPIInstrumentor's: profiling the
        # catalog showed it on the hot path. One instrumentation is enough.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_problem_handlers(app)

    async def caller_scope(scope: Scope) -> str:
        header = scope_header(scope, b"authorization") or ""
        kind, _, token = header.partition(" ")
        if kind.lower() == "bearer" and token:
            try:
                principal = await app.state.token_verifier.verify(token.strip())
            except Unauthorized:
                return "anonymous"
            return f"user:{principal.user_id}"
        return "anonymous"

    app.add_middleware(
        IdempotencyMiddleware,
        service=settings.service_name,
        redis=lambda: app.state.runtime.redis,
        caller_scope=caller_scope,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    for middleware in reversed(inner_middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(
        RequestContextMiddleware, service=settings.service_name, trace_requests=not traced
    )
    if traced:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    _add_health_routes(app)
    _document_problems(app)
    return app


def _freezing_heap_after(lifespan: Lifespan) -> Lifespan:
    """``lifespan``, then ``gc.freeze()`` once start-up is done (see the setting)."""

    @asynccontextmanager
    async def frozen(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            gc.collect()
            gc.freeze()
            log.info(
                "start-up heap frozen: %d objects out of the collector's reach",
                gc.get_freeze_count(),
            )
            yield

    return frozen


PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` lists field failures of a 422.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def _document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI document what errors really look like: problem+json.

    FastAPI documents 422s as its own ``HTTPValidationError`` JSON; every operation here
    answers errors (422 and any other) as ``application/problem+json``.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Problem"] = PROBLEM_SCHEMA
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Validation failed", "content": problem}
                responses.setdefault(
                    "default", {"description": "An error (problem details)", "content": problem}
                )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        checks = await request.app.state.runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
