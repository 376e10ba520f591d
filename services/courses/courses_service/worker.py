"""The courses worker: relays course/enrollment/lesson/review events from the outbox to
JetStream and runs the consumers of user, payment and media events."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from courses_service.cache import CourseCache
from courses_service.events import build_consumers
from courses_service.models import inbox, outbox
from courses_service.settings import Settings
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    cache = CourseCache.from_settings(settings, redis)
    try:
        await run_service_worker(
            settings,
            service="courses",
            outbox=outbox,
            inbox=inbox,
            consumers=lambda js, sessions: build_consumers(
                js,
                sessions,
                prefix=settings.events_prefix,
                cache=cache,
                max_deliver=settings.consumer_max_deliver,
            ),
            stop_event=stop_event,
        )
    finally:
        await redis.aclose()
