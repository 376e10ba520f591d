"""create_service_app + ServiceRuntime against the real PostgreSQL, Redis and NATS."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from redis.asyncio import Redis

from unpuzzle_common import app as app_module
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import JWKSKeySource, TokenVerifier
from unpuzzle_common.config import ServiceSettings
from unpuzzle_common.errors import PROBLEM_JSON
from unpuzzle_common.testing import NATS_URL, REDIS_URL, fresh_service_database

SERVICE = "svc_app"


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """create_service_app configures the root logger for JSON; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def database_url(drop_service, unique_name) -> str:
    """A fresh ``svc_app_<random>`` schema and role (dropped after the test).

    The suffix keeps two runs of this suite on one database server out of each other's way.
    """
    return fresh_service_database(drop_service(unique_name(SERVICE)))


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings_for(database_url: str, unique_name) -> Callable[..., ServiceSettings]:
    def make(**overrides: object) -> ServiceSettings:
        values: dict[str, object] = {
            "env": "test",
            "service_name": unique_name(SERVICE),
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "nats_url": NATS_URL,
            "max_body_bytes": 1024,
        }
        values.update(overrides)
        return ServiceSettings(**values)

    return make


class NewNote(BaseModel):
    text: str


def build_app(settings: ServiceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime.open(settings) as runtime:
            keys = JWKSKeySource(settings.jwks_url)
            runtime.closers.append(keys.aclose)
            app.state.runtime = runtime
            app.state.token_verifier = TokenVerifier(
                keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            )
            yield

    app = create_service_app(
        settings, title="notes", version="0.0.1", description="test app", lifespan=lifespan
    )
    created = {"count": 0}

    @app.post("/notes", status_code=201)
    async def create_note(note: NewNote) -> dict:
        created["count"] += 1
        return {"id": created["count"], "text": note.text}

    return app


@pytest.fixture
def running(client_for) -> Callable[[ServiceSettings], AbstractAsyncContextManager]:
    """``async with running(settings) as client``: the app's lifespan runs around the block."""

    @asynccontextmanager
    async def start(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            yield client_for(app)

    return start


async def test_healthz_answers_while_the_process_is_up(running, settings_for) -> None:
    async with running(settings_for()) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_database_redis_and_nats_answer(running, settings_for) -> None:
    async with running(settings_for()) as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "nats": "ok"},
    }


async def test_readyz_is_503_naming_redis_when_redis_is_unreachable(running, settings_for) -> None:
    settings = settings_for(redis_url=f"redis://127.0.0.1:{free_port()}/0")

    async with running(settings) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["nats"] == "ok"


async def test_readyz_is_503_naming_the_database_when_it_is_unreachable(
    running, settings_for
) -> None:
    settings = settings_for(
        database_url=f"postgresql+psycopg://nobody:x@127.0.0.1:{free_port()}/nothing"
    )

    async with running(settings) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")
    assert response.json()["checks"]["redis"] == "ok"


async def test_service_starts_while_nats_is_down_and_readyz_names_nats(
    running, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "NATS_STARTUP_WAIT", 0.3)
    settings = settings_for(nats_url=f"nats://127.0.0.1:{free_port()}")
    started = time.monotonic()

    async with asyncio.timeout(10), running(settings) as client:
        startup = time.monotonic() - started
        response = await client.get("/readyz")

    assert startup < 3
    assert response.status_code == 503
    assert response.json()["checks"]["nats"] == "unreachable"
    assert response.json()["checks"]["database"] == "ok"


@asynccontextmanager
async def tcp_proxy(port: int, target: str) -> AsyncIterator[None]:
    """Forward 127.0.0.1:``port`` to ``target`` (a URL) while the block runs."""
    upstream = urlsplit(target)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def test_nats_connection_is_made_once_nats_comes_up_after_start(
    running, settings_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "NATS_STARTUP_WAIT", 0.1)
    port = free_port()
    settings = settings_for(nats_url=f"nats://127.0.0.1:{port}")

    async with running(settings) as client:
        assert (await client.get("/readyz")).json()["checks"]["nats"] == "unreachable"
        async with tcp_proxy(port, NATS_URL):
            deadline = time.monotonic() + 5
            while (response := await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, response.json()
                await asyncio.sleep(0.1)

    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "nats": "ok"}


async def test_metrics_serve_prometheus_text_with_request_counts(running, settings_for) -> None:
    settings = settings_for()
    async with running(settings) as client:
        await client.get("/healthz")
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["http_requests"].type == "counter"
    healthz = [
        s.value
        for s in families["http_requests"].samples
        if s.name == "http_requests_total"
        and s.labels
        == {"service": settings.service_name, "method": "GET", "route": "/healthz", "status": "200"}
    ]
    assert healthz == [1.0]
    pool = [
        s
        for s in families["db_pool_connections_in_use"].samples
        if s.labels == {"service": settings.service_name}
    ]
    assert len(pool) == 1 and pool[0].value >= 0


async def test_errors_are_problem_json_with_a_request_id(running, settings_for) -> None:
    async with running(settings_for()) as client:
        response = await client.post("/notes", json={"txt": "typo"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["x-request-id"]


async def test_idempotency_key_replays_through_the_runtime_redis(
    running, settings_for, redis: Redis
) -> None:
    settings = settings_for()
    headers = {"Idempotency-Key": "note-1"}
    try:
        async with running(settings) as client:
            first = await client.post("/notes", json={"text": "hi"}, headers=headers)
            again = await client.post("/notes", json={"text": "hi"}, headers=headers)
    finally:
        keys = [k async for k in redis.scan_iter(f"idem:{settings.service_name}:*")]
        if keys:
            await redis.delete(*keys)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"id": 1, "text": "hi"}
    assert again.headers["idempotent-replayed"] == "true"


async def test_body_over_the_configured_limit_is_413(running, settings_for) -> None:
    async with running(settings_for(max_body_bytes=64)) as client:
        response = await client.post(
            "/notes", json={"text": "x" * 100}, headers={"Idempotency-Key": "big-1"}
        )

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_the_start_up_heap_is_frozen_when_asked(running, settings_for) -> None:
    import gc

    gc.unfreeze()
    try:
        async with running(settings_for()) as client:
            assert gc.get_freeze_count() == 0, "off unless asked (tests build many apps)"
            assert (await client.get("/healthz")).status_code == 200
        settings = settings_for().model_copy(update={"freeze_heap_after_startup": True})
        async with running(settings) as client:
            assert gc.get_freeze_count() > 0
            assert (await client.get("/healthz")).status_code == 200
    finally:
        gc.unfreeze()


def test_serve_freezes_the_heap_unless_told_otherwise(monkeypatch) -> None:
    import uvicorn

    from unpuzzle_common.cli import ServiceCommands

    seen: list[ServiceSettings] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    commands = ServiceCommands.__new__(ServiceCommands)
    commands._app = lambda settings: seen.append(settings)  # the app factory

    class Served(ServiceSettings):
        host: str = "127.0.0.1"
        port: int = 8000

    default = Served(service_name="t")
    explicit = Served(service_name="t", freeze_heap_after_startup=False)
    monkeypatch.setattr("unpuzzle_common.cli._load", lambda factory: factory)
    commands._serve(default, None)
    commands._serve(explicit, None)
    assert [s.freeze_heap_after_startup for s in seen] == [True, False]
