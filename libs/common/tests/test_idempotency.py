"""Idempotency-Key on POSTs: replay the first answer, refuse reuse, never run twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Response
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.types import Scope

from unpuzzle_common.errors import PROBLEM_JSON, ServiceUnavailable, install_problem_handlers
from unpuzzle_common.idempotency import IdempotencyMiddleware
from unpuzzle_common.observability import scope_header


class NewOrder(BaseModel):
    course_id: str
    amount: int


@dataclass
class OrdersApp:
    """A POST /orders route that counts how often it really ran."""

    app: FastAPI
    service: str
    runs: int = 0
    fail_next: list[str] = field(default_factory=list)
    delay: float = 0.0


async def caller_from_header(scope: Scope) -> str:
    return scope_header(scope, b"x-caller") or "anonymous"


def build_orders_app(service: str, redis: Any) -> OrdersApp:
    app = FastAPI()
    install_problem_handlers(app)
    orders = OrdersApp(app, service)

    @app.post("/orders", status_code=201)
    async def create_order(order: NewOrder, response: Response) -> dict:
        orders.runs += 1
        number = orders.runs
        if orders.delay:
            await asyncio.sleep(orders.delay)
        if orders.fail_next:
            failure = orders.fail_next.pop(0)
            if failure == "crash":
                raise RuntimeError("lost the database connection")
            raise ServiceUnavailable("The payment provider is down.")
        response.headers["Location"] = f"/orders/{number}"
        return {"id": number, **order.model_dump()}

    app.add_middleware(
        IdempotencyMiddleware,
        service=service,
        redis=lambda: redis,
        caller_scope=caller_from_header,
    )
    return orders


@pytest.fixture
def service(unique_name) -> str:
    """A service name of this test alone (records are keyed by service)."""
    return unique_name("idem")


@pytest.fixture(autouse=True)
async def forget_records(redis: Redis, service: str) -> AsyncIterator[None]:
    yield
    keys = [k async for k in redis.scan_iter(f"idem:{service}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def orders(redis: Redis, service: str) -> OrdersApp:
    return build_orders_app(service, redis)


@pytest.fixture
def client(client_for, orders: OrdersApp):
    return client_for(orders.app, raise_app_exceptions=False)


ORDER = {"course_id": "rust-101", "amount": 1999}


def key(value: str = "order-key-1", caller: str | None = None) -> dict[str, str]:
    headers = {"Idempotency-Key": value}
    if caller:
        headers["X-Caller"] = caller
    return headers


async def test_same_key_and_body_replays_the_first_answer(client, orders: OrdersApp) -> None:
    first = await client.post("/orders", json=ORDER, headers=key())
    again = await client.post("/orders", json=ORDER, headers=key())

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"id": 1, **ORDER}
    assert again.headers["location"] == first.headers["location"] == "/orders/1"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert orders.runs == 1


async def test_same_key_with_different_body_is_422_naming_the_header(
    client, orders: OrdersApp
) -> None:
    await client.post("/orders", json=ORDER, headers=key())

    response = await client.post("/orders", json={**ORDER, "amount": 1}, headers=key())

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["Idempotency-Key"]
    assert orders.runs == 1


async def test_same_key_from_different_callers_is_not_shared(client, orders: OrdersApp) -> None:
    ada = await client.post("/orders", json=ORDER, headers=key(caller="user:ada"))
    bob = await client.post("/orders", json=ORDER, headers=key(caller="user:bob"))

    assert ada.status_code == bob.status_code == 201
    assert ada.json()["id"] != bob.json()["id"]
    assert "idempotent-replayed" not in bob.headers
    assert orders.runs == 2


async def test_server_error_answer_is_not_stored_so_a_retry_runs_again(
    client, orders: OrdersApp
) -> None:
    orders.fail_next.append("unavailable")

    failed = await client.post("/orders", json=ORDER, headers=key())
    retried = await client.post("/orders", json=ORDER, headers=key())

    assert failed.status_code == 503
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert orders.runs == 2


async def test_crashed_request_is_not_stored_so_a_retry_runs_again(
    client, orders: OrdersApp
) -> None:
    orders.fail_next.append("crash")

    failed = await client.post("/orders", json=ORDER, headers=key())
    retried = await client.post("/orders", json=ORDER, headers=key())

    assert failed.status_code == 500
    assert retried.status_code == 201
    assert orders.runs == 2


async def test_client_errors_are_stored_and_replayed(client, orders: OrdersApp) -> None:
    first = await client.post("/orders", json={"course_id": "x"}, headers=key())
    again = await client.post("/orders", json={"course_id": "x"}, headers=key())

    assert first.status_code == again.status_code == 422
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_concurrent_requests_with_one_key_run_the_handler_once(
    client, orders: OrdersApp
) -> None:
    orders.delay = 0.2

    answers = await asyncio.gather(
        *(client.post("/orders", json=ORDER, headers=key()) for _ in range(3))
    )

    assert orders.runs == 1
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["content-type"] == PROBLEM_JSON
        else:
            assert answer.json() == {"id": 1, **ORDER}


class LookupThenPause:
    """Redis whose next GET answers, then waits for ``resume`` before returning.

    It stages the race where a retry checks for a stored answer (none yet), the
    first request then finishes and releases its lock, and only then the retry
    takes the lock.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.pause_next_get = False
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    async def get(self, name: str) -> Any:
        value = await self._redis.get(name)
        if self.pause_next_get:
            self.pause_next_get = False
            self.paused.set()
            await self.resume.wait()
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)


async def test_retry_racing_the_end_of_the_first_request_replays_instead_of_running(
    client_for, redis: Redis, service: str
) -> None:
    staged = LookupThenPause(redis)
    orders = build_orders_app(service, staged)
    client = client_for(orders.app)

    staged.pause_next_get = True
    retry = asyncio.create_task(client.post("/orders", json=ORDER, headers=key()))
    await staged.paused.wait()
    first = await client.post("/orders", json=ORDER, headers=key())
    staged.resume.set()
    retried = await retry

    assert first.status_code == retried.status_code == 201
    assert retried.json() == first.json()
    assert orders.runs == 1


async def test_without_the_header_every_request_runs(client, orders: OrdersApp) -> None:
    first = await client.post("/orders", json=ORDER)
    second = await client.post("/orders", json=ORDER)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert orders.runs == 2


@pytest.mark.parametrize("bad_key", [b"has space", b"x" * 256, "é".encode()])
async def test_malformed_key_is_422_naming_the_header(
    client, orders: OrdersApp, bad_key: bytes
) -> None:
    response = await client.post("/orders", json=ORDER, headers={"Idempotency-Key": bad_key})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["Idempotency-Key"]
    assert orders.runs == 0


async def test_replay_expires_after_the_retention_period(
    client, orders: OrdersApp, redis: Redis
) -> None:
    await client.post("/orders", json=ORDER, headers=key())

    ttls = [await redis.ttl(k) async for k in redis.scan_iter(f"idem:{orders.service}:*")]

    assert ttls
    assert all(23 * 3600 < t <= 24 * 3600 for t in ttls)


async def test_redis_down_refuses_keyed_requests_with_503_and_runs_nothing(
    client_for, service: str
) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    orders = build_orders_app(service, unreachable)
    client = client_for(orders.app, raise_app_exceptions=False)
    try:
        refused = await client.post("/orders", json=ORDER, headers=key())
        unkeyed = await client.post("/orders", json=ORDER)
    finally:
        await unreachable.aclose()

    assert refused.status_code == 503
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.headers["retry-after"] == "2"
    assert unkeyed.status_code == 201  # requests without a key do not need Redis
    assert orders.runs == 1
