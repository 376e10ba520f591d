"""Relay and consumer keep going across a NATS restart (a private nats-server)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from unpuzzle_common.events import (
    UserRegistered,
    add_event,
    connect,
    ensure_service_stream,
    jetstream_context,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events_fixtures import EventsEnv, events_env, eventually

__all__ = ["events_env"]

NATS_SERVER = shutil.which("nats-server")
pytestmark = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server binary not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateNats:
    """A nats-server with JetStream on disk that the test may stop and start again."""

    def __init__(self, store: Path) -> None:
        self.port = _free_port()
        self.store = store
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert NATS_SERVER is not None
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    async def ready(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "js")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _running(*workers: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_relay_and_consumer_survive_a_nats_restart(
    events_env: EventsEnv, private_nats: PrivateNats
) -> None:
    env = events_env
    await eventually(private_nats.ready)
    nc = await connect(private_nats.url, "restart-test", reconnect_time_wait=0.2)
    try:
        js = jetstream_context(nc, timeout=1.0)
        await ensure_service_stream(js, env.prefix, "auth")
        env.js = js  # relay and consumer below use the private server
        relay = env.relay(poll_interval=0.5, publish_timeout=1.0, max_backoff=1.0)
        consumer = env.consumer(name="courses_user", fetch_timeout=0.5)

        async def write() -> None:
            data = UserRegistered(
                user_id=uuid.uuid4(), email="a@example.com", full_name="A", roles=[]
            )
            async with env.sessions() as session, session.begin():
                await add_event(session, env.outbox, data, source="auth")

        async def effects(n: int) -> bool:
            return await env.count(env.effects) == n

        async def all_marked() -> bool:
            async with env.sessions() as session:
                rows = await session.execute(
                    select(env.outbox.c.id).where(env.outbox.c.published_at.is_(None))
                )
                return rows.first() is None

        async with _running(relay, consumer):
            await write()
            await eventually(lambda: effects(1), timeout=5)

            private_nats.stop()
            await write()  # while NATS is down
            await asyncio.sleep(1.0)
            private_nats.start()
            await eventually(lambda: effects(2), timeout=15)
            # The PubAck of a publish buffered during the outage may be lost: the relay
            # then re-publishes (dropped as a duplicate) before marking the row.
            await eventually(all_marked, timeout=10)

        assert await env.count(env.effects) == 2
        assert await env.count(env.inbox) == 2
        assert (await js.stream_info(env.stream)).state.messages == 2
    finally:
        await nc.close()
