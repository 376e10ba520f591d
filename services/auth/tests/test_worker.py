"""The auth worker relays user events from the outbox to JetStream."""

from __future__ import annotations

import asyncio
import json

import nats

from auth_service.worker import run_worker
from unpuzzle_common.testing import delete_streams_with_prefix


async def test_signup_event_reaches_jetstream_through_the_worker(settings, signup):
    nc = await nats.connect(settings.nats_url)
    received: asyncio.Queue = asyncio.Queue()
    await nc.subscribe(f"{settings.events_prefix}.user.registered.v1", cb=received.put)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        tokens = await signup()
        message = await asyncio.wait_for(received.get(), timeout=10)
        envelope = json.loads(message.data)
        assert envelope["type"] == "user.registered.v1"
        assert envelope["source"] == "auth"
        assert envelope["data"]["user_id"] == tokens["user"]["id"]
        assert message.headers["Nats-Msg-Id"] == envelope["id"]
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=10)
        await delete_streams_with_prefix(nc.jetstream(), settings.events_prefix)
        await nc.close()


async def test_worker_serves_health_and_metrics_when_given_a_port(settings):
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    probed = settings.model_copy(update={"worker_host": "127.0.0.1", "worker_port": port})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(probed, stop_event=stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            metrics = await client.get("/metrics")
            missing = await client.get("/nope")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert "events_published_total" in metrics.text
        assert missing.status_code == 404
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=10)
        nc = await nats.connect(settings.nats_url)
        await delete_streams_with_prefix(nc.jetstream(), settings.events_prefix)
        await nc.close()
