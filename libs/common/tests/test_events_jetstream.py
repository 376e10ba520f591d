"""Explicit JetStream setup applies config to what already exists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unpuzzle_common.events import (
    ensure_consumer,
    ensure_dlq_stream,
    ensure_stream,
    service_subjects,
    stream_name,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events_fixtures import EventsEnv, events_env

__all__ = ["events_env"]


def test_names() -> None:
    assert stream_name("unpuzzle", "auth") == "UNPUZZLE_AUTH"
    assert service_subjects("unpuzzle", "auth") == ["unpuzzle.user.>"]
    assert "unpuzzle.enrollment.>" in service_subjects("unpuzzle", "courses")
    with pytest.raises(ValueError):
        stream_name("unpuzzle", "a.b")


async def test_ensure_consumer_updates_an_existing_durable(events_env: EventsEnv) -> None:
    env = events_env
    subject = f"{env.prefix}.user.>"
    first = await ensure_consumer(env.js, env.stream, "analytics_user", subject, max_deliver=3)
    assert first.config.max_deliver == 3

    again = await ensure_consumer(env.js, env.stream, "analytics_user", subject, max_deliver=3)
    assert again.config == first.config  # nothing to apply

    updated = await ensure_consumer(
        env.js, env.stream, "analytics_user", subject, max_deliver=7, ack_wait=10.0
    )
    assert updated.config.max_deliver == 7
    assert updated.config.ack_wait == pytest.approx(10.0)
    info = await env.js.consumer_info(env.stream, "analytics_user")
    assert info.config.max_deliver == 7

    with pytest.raises(ValueError, match=r"2\.10"):
        await ensure_consumer(
            env.js, env.stream, "analytics_two", [f"{env.prefix}.user.a", f"{env.prefix}.user.b"]
        )


async def test_ensure_stream_updates_subjects_and_window(events_env: EventsEnv) -> None:
    env = events_env
    info = await env.js.stream_info(env.stream)
    assert info.config.subjects == [f"{env.prefix}.user.>"]
    assert info.config.duplicate_window == pytest.approx(120.0)

    updated = await ensure_stream(
        env.js, env.stream, [f"{env.prefix}.user.>", f"{env.prefix}.session.>"],
        duplicate_window=60.0,
    )  # fmt: skip
    assert sorted(updated.config.subjects) == sorted(
        [f"{env.prefix}.user.>", f"{env.prefix}.session.>"]
    )
    assert updated.config.duplicate_window == pytest.approx(60.0)

    dlq = await ensure_dlq_stream(env.js, env.prefix)
    assert dlq.config.subjects == [f"{env.prefix}.dlq.>"]
    assert (await ensure_dlq_stream(env.js, env.prefix)).config == dlq.config


async def test_workers_starting_together_both_get_the_stream(events_env: EventsEnv) -> None:
    # Two workers racing through "not found → create": the loser must not fail.
    import asyncio

    env = events_env
    name = f"{env.prefix}_RACE".upper()
    try:
        results = await asyncio.gather(
            *(ensure_stream(env.js, name, [f"{env.prefix}.race.>"]) for _ in range(4))
        )
        assert {r.config.name for r in results} == {name}
    finally:
        await env.js.delete_stream(name)
