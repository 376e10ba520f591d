"""Redis caching of anonymous catalog pages and course documents, and its invalidation.

Keys (``p`` is ``settings.cache_prefix``)::

    p:epoch                          bumped when an invalidation may have been lost
    p:catalog:gen                    bumped by every change that may change which courses
                                     a page lists or their order (all but enrollments)
    p:catalog:popular                bumped by enrollment counts (the popular order)
    p:course:<id>:v                  bumped by every change to that course
    p:course:<id>:rv                 the highest row version of the course seen committed
    p:catalog:<epoch>:<gen>[:p<popular>]:<hash>
                                     one anonymous catalog page: "<id>=<row version> ..."
                                     of the courses it shows, a newline, its JSON; <hash>
                                     digests the query's parameters as sent
                                     (:func:`catalog_key`); popular-sorted pages also
                                     carry the popular counter
    p:course:<epoch>:<id>:<v>        one course document (JSON)
    p:slug:<slug>                    slug → course id (slugs never change)

A reader reads the counters, then the entry stored under them (one round trip: a Lua
script does both for catalog pages); a writer bumps the
counters *after* its transaction committed (in the same request). A reader that built
an entry from data older than a write stores it under the old counter value, which
nobody reads any more: no stale entry survives a write, and nothing is ever deleted
by pattern.

Enrollments are the frequent write, and they only change a course's
``enrollment_count`` (and so the popular order). They do not retire every page: each
course row carries a ``row_version`` a trigger raises on every UPDATE, a page records
the versions of the courses it shows *as it read them*, and the lookup serves it only
while each course's ``rv`` key still holds that version. The writer raises ``rv`` to
its row's new version after the commit (a page built from older rows then no longer
matches), and a page's store raises them to the versions it read (only ever upward,
so a slow reader cannot lower them). Popular-sorted pages also carry the popular
counter, which enrollments bump. These scripts name keys they build themselves: they
need a single Redis, not Redis Cluster.

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
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.settings import Settings

log = logging.getLogger(__name__)

_TOUCHED = "courses_touched"


@dataclass
class Touched:
    """What a transaction changed, for the invalidation after its commit."""

    #: Courses changed in a way that may change any page's list or order (or anything).
    listing: set[uuid.UUID] = field(default_factory=set)
    #: Courses whose enrollment count alone changed -> their row version after it.
    counts: dict[uuid.UUID, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.listing or self.counts)

    def __ior__(self, other: Touched) -> Touched:
        self.listing |= other.listing
        for course_id, version in other.counts.items():
            self.counts[course_id] = max(version, self.counts.get(course_id, version))
        return self


def touch_course(
    session: AsyncSession, course_id: uuid.UUID, *, counted_at: int | None = None
) -> None:
    """Record that this transaction changed what course ``course_id`` looks like.

    ``counted_at``: only its enrollment count changed, and its row is now at this
    ``row_version`` (the UPDATE's RETURNING): pages not showing it stay cached.
    """
    touched = session.info.setdefault(_TOUCHED, Touched())
    if counted_at is None:
        touched.listing.add(course_id)
    else:
        touched.counts[course_id] = max(counted_at, touched.counts.get(course_id, counted_at))


def touched_courses(session: AsyncSession) -> Touched:
    """What :func:`touch_course` recorded in this session."""
    recorded = session.info.get(_TOUCHED)
    return Touched(set(recorded.listing), dict(recorded.counts)) if recorded else Touched()


def catalog_key(query_string: bytes, names: Collection[str]) -> str:
    """A stable digest of a catalog request's parameters as sent.

    Only the parameters in ``names`` count (the API ignores any other, so they must not
    split the cache); a repeated parameter keeps its values in order (the last one is
    the one the API uses). The request is read as Starlette reads it. Both the
    pre-routing cache lookup and the handler key pages this way, so a page the handler
    stored is found before routing next time.
    """
    return parameters_digest(catalog_parameters(query_string, names))


def catalog_parameters(query_string: bytes, names: Collection[str]) -> dict[str, list[str]]:
    """The values of the parameters in ``names``, in the order sent, as Starlette reads them."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in names:
            values.setdefault(name, []).append(value)
    return values


def parameters_digest(values: dict[str, list[str]]) -> str:
    """The cache digest of :func:`catalog_parameters`' result."""
    raw = json.dumps(sorted(values.items()), separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


#: The counters, the page under them and its courses' versions in one round trip.
#: KEYS: epoch, generation, popular counter; ARGV: the entry's key prefix, the digest,
#: "1" for a popular-sorted page, the row-version key prefix. Answers {key, page or nil}.
_CATALOG_LOOKUP = """
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local gen = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local key = ARGV[1] .. string.format('%d:%d:', epoch, gen)
if ARGV[3] == '1' then
  key = key .. string.format('p%d:', tonumber(redis.call('GET', KEYS[3]) or '0') or 0)
end
key = key .. ARGV[2]
local entry = redis.call('GET', key)
if not entry then return {key, false} end
local cut = string.find(entry, '\\n', 1, true)
if not cut then return {key, false} end
for id, version in string.gmatch(string.sub(entry, 1, cut - 1), '([^ =]+)=(%d+)') do
  if redis.call('GET', ARGV[4] .. id .. ':rv') ~= version then return {key, false} end
end
return {key, string.sub(entry, cut + 1)}
"""

#: Raise row-version keys, never lower them. KEYS: the rv keys; ARGV: their versions,
#: then the seconds they live.
_RAISE_VERSIONS = """
local ttl = ARGV[#KEYS + 1]
for i, key in ipairs(KEYS) do
  local seen = tonumber(redis.call('GET', key) or '-1') or -1
  if tonumber(ARGV[i]) > seen then redis.call('SET', key, ARGV[i], 'EX', ttl) end
end
return #KEYS
"""

#: Store a catalog page and raise its courses' row-version keys (never lower them), in
#: one round trip. KEYS: the page's key, then the rv keys; ARGV: the entry, the page's
#: seconds to live, the rv keys' seconds to live, then the versions of the rv keys.
_STORE_PAGE = """
local ttl = ARGV[3]
for i = 2, #KEYS do
  local version = tonumber(ARGV[i + 2])
  local seen = tonumber(redis.call('GET', KEYS[i]) or '-1') or -1
  if version > seen then redis.call('SET', KEYS[i], ARGV[i + 2], 'EX', ttl) end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return #KEYS - 1
"""

#: How long a row-version key lives (a page whose key expired is a miss, never stale).
ROW_VERSION_TTL = 86_400


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
        self._catalog_lookup = redis.register_script(_CATALOG_LOOKUP)
        self._raise_versions = redis.register_script(_RAISE_VERSIONS)
        self._store_page = redis.register_script(_STORE_PAGE)

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

    @property
    def _popular_key(self) -> str:
        return f"{self._p}:catalog:popular"

    def _version_key(self, course_id: uuid.UUID | str) -> str:
        return f"{self._p}:course:{course_id}:v"

    def _row_version_key(self, course_id: uuid.UUID | str) -> str:
        return f"{self._p}:course:{course_id}:rv"

    # -- reading ------------------------------------------------------------------------

    async def catalog_page(
        self, digest: str, *, popular: bool = False
    ) -> tuple[bytes | None, str | None]:
        """The cached page for ``digest`` and the key to store it under (None: no Redis).

        ``popular``: the page is sorted by enrollment counts.
        """

        async def read(redis: Redis) -> tuple[bytes | None, str]:
            answer = await self._catalog_lookup(
                keys=[self._epoch_key, self._gen_key, self._popular_key],
                args=[
                    f"{self._p}:catalog:",
                    digest,
                    "1" if popular else "0",
                    f"{self._p}:course:",
                ],
                client=redis,
            )
            key, page = [*answer, None][:2]
            return page, key.decode() if isinstance(key, bytes) else key

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

    async def store_catalog_page(
        self, key: str | None, value: bytes, shown: Iterable[tuple[uuid.UUID, int]]
    ) -> None:
        """Store a page with the row versions of the courses it ``shown`` as read."""
        if key is None:
            return
        shown = list(shown)
        entry = " ".join(f"{course_id}={version}" for course_id, version in shown).encode()
        keys = [key, *(self._row_version_key(course_id) for course_id, _ in shown)]
        args = [entry + b"\n" + value, self._catalog_ttl, ROW_VERSION_TTL]
        args += [version for _, version in shown]

        async def store(redis: Redis) -> None:
            await self._store_page(keys=keys, args=args, client=redis)

        await self._call(store)

    async def store_course_document(self, key: str | None, value: bytes) -> None:
        if key is not None:
            await self._call(lambda redis: redis.set(key, value, ex=self._course_ttl))

    async def remember_slug(self, slug: str, course_id: uuid.UUID) -> None:
        await self._call(
            lambda redis: redis.set(f"{self._p}:slug:{slug}", str(course_id), ex=86_400)
        )

    async def invalidate(self, touched: Touched) -> None:
        """Retire what ``touched`` made stale: the changed courses' documents; every
        catalog page after a listing change; after count changes, the popular-sorted
        pages and the pages showing those courses (their row versions move on)."""
        if not touched:
            return

        async def bump(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for course_id in touched.listing | set(touched.counts):
                    pipe.incr(self._version_key(course_id))
                if touched.counts:
                    await self._raise(pipe, touched.counts)
                    pipe.incr(self._popular_key)
                if touched.listing:
                    pipe.incr(self._gen_key)
                await pipe.execute()

        if not await self._call(bump, invalidation=True):
            self._lost_invalidation = True

    async def invalidate_everything(self) -> None:
        """Retire every cached entry (after bulk changes such as the seed)."""
        if not await self._call(lambda redis: redis.incr(self._epoch_key), invalidation=True):
            self._lost_invalidation = True

    async def _raise(self, pipe: Any, versions: dict[uuid.UUID, int]) -> None:
        """Queue raising the row-version keys of ``versions`` on ``pipe``."""
        ids = list(versions)
        await self._raise_versions(
            keys=[self._row_version_key(i) for i in ids],
            args=[*(versions[i] for i in ids), ROW_VERSION_TTL],
            client=pipe,
        )

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
