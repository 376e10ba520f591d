"""What the routes and the domain take from the running service, built in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_service.answering import Answering
from ai_service.settings import Settings
from ai_service.usage import UsageLimiter

log = logging.getLogger(__name__)


@dataclass
class BackgroundWork:
    """Tasks that must finish even if the request that started them is gone (the end of
    a stream whose client disconnected). The lifespan waits for them at shutdown."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed: %r", task.get_name(), task.exception())

    async def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the running tasks."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)


@dataclass
class TutorContext:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    limiter: UsageLimiter
    answering: Answering
    background: BackgroundWork = field(default_factory=BackgroundWork)
