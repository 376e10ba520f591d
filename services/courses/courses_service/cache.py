"""Redis caching of anonymous catalog pages and course documents, and its invalidation.

Keys (``p`` is ``settings.cache_prefix``)::

    p:epoch                          bumped when an invalidation may have been lost
    p:catalog:gen                    bumped by every change to any course
    p:course:<id>:v                  bumped by every change to that course
    p:catalog:<epoch>:<gen>:<hash>   one anonymous catalog page (JSON)
    p:course:<epoch>:<id>:<v>        one course document (JSON)
    p:slug:<slug>                    slug → course id (slugs never change)

A reader reads the counters, then the entry stored under them; a writer bumps the
counters *after* its transaction committed (in the same request). A reader that built
an entry from data older than a write stores it under the old counter value, which
nobody reads any more: no stale entry survives a write, and nothing is ever deleted
by pattern.

Redis is an optimisation only. Every Redis error is logged and answered as a miss;
after one, Redis is left alone for ``retry_after`` seconds. An invalidation that
failed is made up for by bumping the epoch at the next successful contact, which
retires every entry at once.

Domain code marks the courses a transaction changed with :func:`touch_course`; the
unit of work (API) or the consumer (worker) invalidates them after the commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.settings import Settings

log = logging.getLogger(__name__)

_TOUCHED = "courses_touched"


def touch_course(session: AsyncSession, course_id: uuid.UUID) -> None:
    """Record that this transaction changed what course ``course_id`` looks like."""
    session.info.setdefault(_TOUCHED, set()).add(course_id)


def touched_courses(session: AsyncSession) -> set[uuid.UUID]:
    """The courses :func:`touch_course` recorded in this session."""
    return set(session.info.get(_TOUCHED, ()))


def catalog_key(params: dict[str, Any]) -> str:
    """A stable digest of a catalog query (filters, sort, limit, cursor)."""
    raw = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class CourseCache:
    """Catalog pages and course documents in Redis; see the module documentation."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        catalog_ttl: int,
        course_ttl: int,
        retry_after: float = 5.0,
    ) -> None:
        self._redis = redis
        self._p = prefix
        self._catalog_ttl = catalog_ttl
        self._course_ttl = course_ttl
        self._retry_after = retry_after
        self._down_until = 0.0
        self._lost_invalidation = False

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> CourseCache:
        return cls(
            redis,
            prefix=settings.cache_prefix,
            catalog_ttl=settings.catalog_cache_ttl,
            course_ttl=settings.course_cache_ttl,
            retry_after=settings.cache_retry_after,
        )

    # -- keys ---------------------------------------------------------------------------

    @property
    def _epoch_key(self) -> str:
        return f"{self._p}:epoch"

    @property
    def _gen_key(self) -> str:
        return f"{self._p}:catalog:gen"

    def _version_key(self, course_id: uuid.UUID | str) -> str:
        return f"{self._p}:course:{course_id}:v"

    # -- reading ------------------------------------------------------------------------

    async def catalog_page(self, digest: str) -> tuple[bytes | None, str | None]:
        """The cached page for ``digest`` and the key to store it under (None: no Redis)."""

        async def read(redis: Redis) -> tuple[bytes | None, str]:
            epoch, gen = await redis.mget(self._epoch_key, self._gen_key)
            key = f"{self._p}:catalog:{_int(epoch)}:{_int(gen)}:{digest}"
            return await redis.get(key), key

        return await self._lookup(read)

    async def course_document(self, course_id: uuid.UUID) -> tuple[bytes | None, str | None]:
        """The cached document of a course and the key to store it under."""

        async def read(redis: Redis) -> tuple[bytes | None, str]:
            epoch, version = await redis.mget(self._epoch_key, self._version_key(course_id))
            key = f"{self._p}:course:{_int(epoch)}:{course_id}:{_int(version)}"
            return await redis.get(key), key

        return await self._lookup(read)

    async def course_id_for_slug(self, slug: str) -> uuid.UUID | None:
        value, _ = await self._lookup(
            lambda redis: _with_key(redis.get(f"{self._p}:slug:{slug}"), "")
        )
        try:
            return uuid.UUID(value.decode()) if value else None
        except ValueError:
            return None

    # -- writing ------------------------------------------------------------------------

    async def store_catalog_page(self, key: str | None, value: bytes) -> None:
        if key is not None:
            await self._call(lambda redis: redis.set(key, value, ex=self._catalog_ttl))

    async def store_course_document(self, key: str | None, value: bytes) -> None:
        if key is not None:
            await self._call(lambda redis: redis.set(key, value, ex=self._course_ttl))

    async def remember_slug(self, slug: str, course_id: uuid.UUID) -> None:
        await self._call(
            lambda redis: redis.set(f"{self._p}:slug:{slug}", str(course_id), ex=86_400)
        )

    async def invalidate(self, course_ids: Iterable[uuid.UUID]) -> None:
        """Retire the cached documents of ``course_ids`` and every cached catalog page."""
        ids = list(course_ids)
        if not ids:
            return

        async def bump(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for course_id in ids:
                    pipe.incr(self._version_key(course_id))
                pipe.incr(self._gen_key)
                await pipe.execute()

        if not await self._call(bump, invalidation=True):
            self._lost_invalidation = True

    async def invalidate_everything(self) -> None:
        """Retire every cached entry (after bulk changes such as the seed)."""
        if not await self._call(lambda redis: redis.incr(self._epoch_key), invalidation=True):
            self._lost_invalidation = True

    # -- failure handling ---------------------------------------------------------------

    async def _lookup(self, read: Any) -> tuple[Any, str | None]:
        result: list[Any] = []

        async def run(redis: Redis) -> None:
            result.append(await read(redis))

        if await self._call(run):
            return result[0]
        return None, None

    async def _call(self, operation: Any, *, invalidation: bool = False) -> bool:
        """Run ``operation(redis)``; False (after logging) when Redis failed or is resting."""
        if time.monotonic() < self._down_until:
            return False
        try:
            if self._lost_invalidation:
                # Some change was not invalidated: retire every entry before trusting any.
                await self._redis.incr(self._epoch_key)
                self._lost_invalidation = False
            await operation(self._redis)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._retry_after
            log.warning(
                "redis unavailable (%s: %s); serving uncached for %.0fs",
                type(exc).__name__,
                exc,
                self._retry_after,
                extra={"invalidation": invalidation},
            )
            return False
        return True


async def _with_key(awaitable: Any, key: str) -> tuple[Any, str]:
    return await awaitable, key


def _int(value: bytes | None) -> int:
    return int(value) if value else 0
