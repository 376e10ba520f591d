"""Catalog (issue 3): the catalog's first page and a course's page, cached and uncached.

The stack's courses database is seeded with ``python -m courses_service seed`` (by
default 2,000 courses x 5 sections x 4 lessons, 50,000 enrollments, 20,000 reviews),
the other services are left to consume the ``course.published.v1`` events that
announces, and then anonymous requests go through the gateway with the HTTP load
generator:

- *catalog page, cached*: ``GET /api/v1/courses`` again and again: after the first, the
  page comes from Redis.
- *catalog page, uncached*: ``GET /api/v1/courses?price_max=<n>`` with a new ``n`` (from
  100,000,000 up, above the largest price) on every request: a new cache key each time,
  and a filter every course passes, so the page is the cached one's, built each time.
- *course page, cached*: ``GET /api/v1/courses/{id}`` of one course, again and again.
- *course page, uncached*: every published course in turn, while the benchmark bumps
  the cache epoch (``<prefix>:epoch``, the key the service itself bumps to retire every
  entry) every 0.2 s, so no course document is found in the cache.

The cache entries written during each run are counted (a SCAN of the bench stack's
own key prefix) to show the hits were hits and the misses misses. Afterwards the courses
API is profiled once under each catalog load (py-spy if installed, else cProfile of the
app in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import pstats
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import profiling
from bench.loadgen import LoadResult, Request, Variant, run_load
from bench.phase import PhaseResult, Row, verdict
from bench.procmem import PeakWatch, listening_pids, service_processes
from bench.progress import log, warn
from bench.stack import Stack
from bench.stackenv import (
    LogWatch,
    explain_errors,
    require_own_stack,
    seed_catalog,
    service_env,
    settings_kwargs,
    settle,
)
from bench.stats import ms

PHASE = "catalog"
CATALOG = "/api/v1/courses"
TARGET_CACHED_RPS = 2000.0
TARGET_CACHED_P99_MS = 25.0
TARGET_UNCACHED_RPS = 500.0
#: Above the largest price a course may have (99,999,999): every course passes.
PRICE_MAX_START = 100_000_000
EPOCH_BUMP_SECONDS = 0.2


@dataclass
class CatalogOptions:
    courses: int
    sections: int
    lessons: int
    enrollments: int
    reviews: int
    connections: int
    duration: float
    warmup: float
    profile_seconds: int
    profile_dir: Path
    profiler: str = "auto"  # auto (py-spy when installed), py-spy, cprofile


async def published_ids(gateway_url: str, limit: int = 5000) -> list[str]:
    """Ids of the published courses, from the anonymous catalog (newest first)."""
    ids: list[str] = []
    cursor: str | None = None
    async with httpx.AsyncClient(timeout=30.0) as client:
        while len(ids) < limit:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(gateway_url + CATALOG, params=params)
            response.raise_for_status()
            page = response.json()
            ids += [item["id"] for item in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return ids


class CacheKeys:
    """Counts the entries under the bench stack's course-cache prefix."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(redis_url)
        self.prefix = prefix

    async def count(self, kind: str) -> int:
        """Catalog pages (``kind="catalog"``) or course documents (``"course"``) stored."""
        n = 0
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{kind}:*", count=1000):
            # p:catalog:<epoch>:<gen>:<hash> and p:course:<epoch>:<id>:<v> (not p:course:<id>:v)
            if key.count(b":") >= 4:
                n += 1
        return n

    async def bump_epoch(self) -> None:
        await self.redis.incr(f"{self.prefix}:epoch")

    async def close(self) -> None:
        await self.redis.aclose()


async def _bump_epoch_until(keys: CacheKeys, stop: asyncio.Event) -> int:
    bumps = 0
    while not stop.is_set():
        await keys.bump_epoch()
        bumps += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EPOCH_BUMP_SECONDS)
    return bumps


async def _check(gateway_url: str, path: str) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(gateway_url + path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")


async def run(
    *,
    tool: str,
    stack: Stack,
    admin_url: str,
    nats_url: str,
    redis_url: str,
    opts: CatalogOptions,
    wrk_threads: int,
) -> PhaseResult:
    require_own_stack(stack, PHASE)
    result = PhaseResult(
        PHASE, "Catalog: `GET /api/v1/courses` and `GET /api/v1/courses/{id}` through the gateway"
    )
    seeded = await seed_catalog(
        stack,
        admin_url=admin_url,
        courses=opts.courses,
        sections=opts.sections,
        lessons=opts.lessons,
        enrollments=opts.enrollments,
        reviews=opts.reviews,
        phase=PHASE,
    )
    settled = await settle(stack, admin_url=admin_url, nats_url=nats_url, phase=PHASE)
    ids = await published_ids(stack.gateway_url)
    if not ids:
        raise RuntimeError("the seeded catalog shows no published course")
    log(PHASE, f"{len(ids)} published courses in the catalog")
    detail = f"{CATALOG}/{ids[0]}"
    uncached_list = f"{CATALOG}?price_max=%d"
    await _check(stack.gateway_url, CATALOG)
    await _check(stack.gateway_url, uncached_list % PRICE_MAX_START)
    await _check(stack.gateway_url, detail)

    cache_prefix = stack.extra_env.get("COURSES_CACHE_PREFIX", "courses")
    keys = CacheKeys(redis_url, cache_prefix)
    watch = PeakWatch(
        service_processes(services=["courses"], ports=stack.ports, gateway_port=stack.gateway_port)
    )
    gw = stack.gateway_url
    counter = [PRICE_MAX_START + 1]

    problems: list[str] = []

    async def load(label: str, request: Request, kind: str) -> tuple[LoadResult, int]:
        before = await keys.count(kind)
        logs = LogWatch(stack, ("courses-api",))
        r = await run_load(
            tool,
            request,
            label=label,
            connections=opts.connections,
            duration=opts.duration,
            phase=PHASE,
            wrk_threads=wrk_threads,
        )
        written = await keys.count(kind) - before
        log(PHASE, f"{label}: {written} cache entries written for {r.requests} requests")
        explain_errors(PHASE, label, r.non_2xx + r.socket_errors, logs, problems)
        return r, written

    async def warm(label: str, request: Request) -> None:
        if opts.warmup > 0:
            await run_load(
                tool,
                request,
                label=f"warm-up {label}",
                connections=opts.connections,
                duration=opts.warmup,
                phase=PHASE,
                wrk_threads=wrk_threads,
            )

    def unique_list() -> Request:
        # Every run its own range of price_max values: no key of an earlier run is hit.
        start = counter[0]
        counter[0] += 100_000_000
        return Request(gw + CATALOG, path_template=uncached_list, counter_start=start)

    try:
        written: dict[str, tuple[int, int]] = {}
        runs: dict[str, LoadResult] = {}

        await warm("catalog page, cached", Request(gw + CATALOG))
        runs["list_cached"], n = await load(
            "catalog page, cached", Request(gw + CATALOG), "catalog"
        )
        written["catalog page, cached"] = (n, runs["list_cached"].requests)

        await warm("catalog page, uncached", unique_list())
        runs["list_uncached"], n = await load("catalog page, uncached", unique_list(), "catalog")
        written["catalog page, uncached"] = (n, runs["list_uncached"].requests)

        await warm("course page, cached", Request(gw + detail))
        runs["detail_cached"], n = await load("course page, cached", Request(gw + detail), "course")
        written["course page, cached"] = (n, runs["detail_cached"].requests)

        variants = [Variant(path=f"{CATALOG}/{course_id}") for course_id in ids]
        stop = asyncio.Event()
        bumper = asyncio.create_task(_bump_epoch_until(keys, stop))
        try:
            runs["detail_uncached"], n = await load(
                "course page, uncached", Request(gw + detail, variants=variants), "course"
            )
        finally:
            stop.set()
            bumps = await bumper
        written["course page, uncached"] = (n, runs["detail_uncached"].requests)

        result.memory = watch.read()
        result.memory_note = watch.note + "; the load runs, not the profiling after them"

        # -- profile once under each catalog load (its failure is not the phase's) ----------
        try:
            result.profile = await _profile(
                tool=tool,
                stack=stack,
                opts=opts,
                cached=Request(gw + CATALOG),
                uncached=unique_list(),
                wrk_threads=wrk_threads,
            )
        except Exception as exc:
            warn(PHASE, "profiling failed", error=repr(exc))
            result.profile = [f"Profiling failed: {exc!r}"[:300]]
    finally:
        await keys.close()

    labels = {
        "list_cached": "catalog page, cached",
        "list_uncached": "catalog page, uncached",
        "detail_cached": "course page, cached",
        "detail_uncached": "course page, uncached",
    }
    for key, label in labels.items():
        result.rows.append(Row.of_load(f"{label} (c={opts.connections})", runs[key]))

    cached, uncached = runs["list_cached"], runs["list_uncached"]
    clean = cached.ok and uncached.ok
    result.target(
        f"cached catalog ≥ {TARGET_CACHED_RPS:,.0f} req/s with p99 < {TARGET_CACHED_P99_MS:g} ms",
        f"{cached.rps:,.0f} req/s, p99 {ms(cached.p99)} ms",
        (cached.rps >= TARGET_CACHED_RPS and cached.p99 < TARGET_CACHED_P99_MS)
        if cached.ok
        else None,
    )
    result.target(
        f"uncached catalog ≥ {TARGET_UNCACHED_RPS:,.0f} req/s",
        f"{uncached.rps:,.0f} req/s (p99 {ms(uncached.p99)} ms)",
        uncached.rps >= TARGET_UNCACHED_RPS if uncached.ok else None,
    )
    if not clean:
        warn(PHASE, "some catalog answers were not 2xx: the targets are not judged")

    result.lines += [
        f"Data: `courses_service seed --courses {opts.courses} --sections {opts.sections} "
        f"--lessons {opts.lessons} --enrollments {opts.enrollments} --reviews {opts.reviews}`"
        + (
            f" ({seeded['seconds']:.1f} s, then `VACUUM (ANALYZE)` of the courses schema in "
            f"{seeded.get('vacuum_seconds', 0):.1f} s, the state autovacuum reaches)"
            if seeded.get("seconds")
            else " (seeded earlier)"
        )
        + f"; {len(ids)} published courses; the other services consumed the events "
        f"in {settled:.1f} s before the first run.",
        f"Anonymous requests through the gateway, {opts.connections} connections, "
        f"{opts.duration:g} s per run"
        + (f" after a {opts.warmup:g} s warm-up." if opts.warmup > 0 else ", no warm-up."),
        "Cached: the same URL again and again. Uncached catalog: `?price_max=<n>`, a new n "
        f"(≥ {PRICE_MAX_START:,}) every request: a new cache key, the same page. Uncached "
        f"course page: the {len(ids)} published courses in turn while the cache epoch is "
        f"bumped every {EPOCH_BUMP_SECONDS:g} s ({bumps} bumps).",
        "Cache entries written during each run (entries written ≈ misses): "
        + "; ".join(f"{label} {n} of {total}" for label, (n, total) in written.items())
        + ".",
    ]
    result.lines += problems
    for t in result.targets:
        log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    result.raw = {
        "runs": {k: v.as_dict() for k, v in runs.items()},
        "cache_entries_written": {
            k: {"written": n, "requests": t} for k, (n, t) in written.items()
        },
        "published_courses": len(ids),
        "seed": {k: v for k, v in seeded.items() if k != "output"},
        "settle_seconds": settled,
    }
    return result


async def _profile(
    *,
    tool: str,
    stack: Stack,
    opts: CatalogOptions,
    cached: Request,
    uncached: Request,
    wrk_threads: int,
) -> list[str]:
    """Profile the courses API once under each catalog load; a few lines of where time goes."""
    if opts.profile_seconds <= 0:
        return []
    pids = listening_pids(stack.ports["courses"])
    if opts.profiler == "cprofile":
        return await _cprofile(stack, opts)
    if profiling.pyspy_path() is None or not pids:
        if opts.profiler == "py-spy":
            raise RuntimeError("--profiler py-spy: py-spy is not installed (pip install py-spy)")
        warn(PHASE, "py-spy is not installed: profiling the courses app in-process (cProfile)")
        return await _cprofile(stack, opts)
    opts.profile_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    lines: list[str] = []
    files: list[str] = []
    for label, request in (("cached catalog", cached), ("uncached catalog", uncached)):
        output = opts.profile_dir / f"{stamp}-catalog-{label.split()[0]}.txt"
        load = asyncio.create_task(
            run_load(
                tool,
                request,
                label=f"profiling: {label}",
                connections=opts.connections,
                duration=opts.profile_seconds + 1.5,
                phase=PHASE,
                wrk_threads=wrk_threads,
            )
        )
        await asyncio.sleep(0.5)  # the load is running before sampling starts
        recorded = await profiling.pyspy_record(
            pids[0], seconds=opts.profile_seconds, output=output, phase=PHASE
        )
        await load
        if recorded is None:
            return await _cprofile(stack, opts)
        summary = profiling.summarise(
            recorded.read_text(),
            label=f"Courses API under the {label} load",
            seconds=opts.profile_seconds,
            rate=100,
        )
        lines += summary.lines()
        files.append(str(recorded))
    lines.append(
        "Raw py-spy profiles (collapsed stacks: flamegraph.pl, speedscope): " + ", ".join(files)
    )
    return lines


async def _cprofile(stack: Stack, opts: CatalogOptions) -> list[str]:
    """cProfile of the courses app in-process (httpx ASGITransport), for lack of py-spy."""
    from courses_service.main import create_app
    from courses_service.settings import Settings

    env = service_env(stack, "courses")
    settings = Settings(**{**settings_kwargs(env, "courses"), "log_level": "WARNING"})
    app = create_app(settings)
    requests = max(50, opts.profile_seconds * 100)
    lines: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for label, path_of in (
                ("cached catalog", lambda i: CATALOG),
                ("uncached catalog", lambda i: f"{CATALOG}?price_max={PRICE_MAX_START * 9 + i}"),
            ):
                await client.get(CATALOG)
                profiler = cProfile.Profile()
                started = time.perf_counter()
                profiler.enable()
                for i in range(requests):
                    await client.get(path_of(i))
                profiler.disable()
                seconds = time.perf_counter() - started
                summary = profiling.summarise_pstats(
                    pstats.Stats(profiler),
                    label=f"Courses app in-process, {label} ({requests / seconds:.0f} req/s "
                    "under cProfile, client included)",
                    requests=requests,
                )
                lines += summary.lines()
    return lines
