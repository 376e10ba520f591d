"""Mixed workload: browse, search, detail, enroll, progress and AI usage through the gateway.

The load of the issue's ``make bench``: many virtual users at once, each doing what a
visitor or a student does, against the gateway URL only.

Set-up (not timed): the demo catalog (``courses_service seed``, as the catalog phase
seeds it, or nothing when that phase already did), a free "tutor" course with lesson
text made through the gateway by an instructor (as the tutor phase makes it, so the AI
tutor has passages to ground its answers in), students signed up at auth (direct, like
every phase), each enrolled in the tutor course and in one free seeded course, the
stack's events consumed, and one tutor chat session per student on one of the tutor
course's lessons.

Timed: ``users`` closed-loop virtual users (one keep-alive HTTP/1.1 connection each, a
raw asyncio client in the bench driver) for ``duration`` seconds after a warm-up. Each
picks an action by weight, does it (one or two requests), waits for the whole answer and
picks the next; no think time:

- *browse* (35): ``GET /api/v1/courses`` with a sort (newest, popular, rating, price), a
  category (by slug) or the free filter, or the next page of the user's last listing
  (its ``next_cursor``); anonymous or signed in, half and half;
- *search* (20): ``GET /api/v1/courses?q=`` with one or two words of the seeded titles
  (sometimes a prefix: the last word matches as one);
- *detail* (25): ``GET /api/v1/courses/{slug}`` or ``/{id}``, half and half, of a course
  from the user's last page or from the whole catalog with a long-tail popularity;
- *enroll* (5): ``POST /api/v1/courses/{id}/enroll`` in a free published course the
  student is not enrolled in yet (201), or again in one they are (200) when none is left;
- *progress* (10): ``POST /api/v1/courses/{id}/lessons/{lesson}/complete`` of a lesson of
  an enrolled course, then ``GET /api/v1/courses/{id}/progress``;
- *ai* (5): ``POST /api/v1/ai/sessions/{id}/messages`` with ``Accept: text/event-stream``
  (read to ``event: done``), then ``GET /api/v1/ai/usage``.

Every request is recorded under its route: count, rate, p50/p90/p99/max, and the
answers that were not the expected ones, by status. A 429 is an error like any other;
one that carries the AI plan's ``daily_limit`` is counted apart. The free plan allows a
student 20 tutor questions a day: no student is asked to go beyond that here (the
stack the benchmark starts lifts the limit anyway, ``AI_FREE_DAILY_LIMIT``), and when
every student has used their 20 the ai action only reads the usage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import quote

import httpx

from bench.accounts import Account, sign_up
from bench.http1 import Answer, Connection
from bench.phase import PhaseResult, Row
from bench.procmem import PeakWatch, cmdline, listening_pids, service_processes
from bench.progress import log, warn
from bench.stack import Stack
from bench.stackenv import (
    LogWatch,
    explain_errors,
    gather_limited,
    request_retrying,
    require_own_stack,
    seed_catalog,
    settle,
)
from bench.stats import Distribution, ms
from bench.textgen import TextGen
from bench.tutor import make_course, new_session

PHASE = "mixed"
API = "/api/v1"
#: Action -> weight (out of 100).
WEIGHTS: dict[str, int] = {
    "browse": 35,
    "search": 20,
    "detail": 25,
    "enroll": 5,
    "progress": 10,
    "ai": 5,
}
#: The AI tutor's free plan: questions per student per day.
FREE_PLAN_QUESTIONS = 20
#: Seconds one request may take before it counts as an error (a streamed answer included).
REQUEST_TIMEOUT = 30.0
#: A token this close to its expiry is renewed (a sign-in at auth) before it is used.
TOKEN_MARGIN = 60.0
#: Free seeded courses whose lessons are looked up for enrolling and progress.
FREE_COURSES_MAX = 200
#: Share of browse actions that take the next page of the previous listing (when it has one).
NEXT_PAGE_SHARE = 0.4
#: Share of the anonymous requests among browse, search and detail.
ANONYMOUS_SHARE = 0.5

# Route labels, in the order of the table (``/api/v1`` left out).
BROWSE = "GET /courses (browse: sort, category, free)"
NEXT_PAGE = "GET /courses?cursor= (browse: next page)"
SEARCH = "GET /courses?q= (search)"
DETAIL_SLUG = "GET /courses/{slug} (detail)"
DETAIL_ID = "GET /courses/{id} (detail)"
ENROLL = "POST /courses/{id}/enroll"
COMPLETE = "POST /courses/{id}/lessons/{lesson}/complete"
PROGRESS = "GET /courses/{id}/progress"
ASK = "POST /ai/sessions/{id}/messages (SSE, to event: done)"
USAGE = "GET /ai/usage"
ROUTES = (
    BROWSE,
    NEXT_PAGE,
    SEARCH,
    DETAIL_SLUG,
    DETAIL_ID,
    ENROLL,
    COMPLETE,
    PROGRESS,
    ASK,
    USAGE,
)
#: Answers that are not errors, per route (any other status, or no answer, is one).
EXPECTED: dict[str, frozenset[int]] = {route: frozenset({200}) for route in ROUTES}
EXPECTED[ENROLL] = frozenset({200, 201})
#: How an answer says it came from the offline (extractive) provider.
_OFFLINE = re.compile(rb'"offline":\s*true')
_STOP_WORDS = {"for", "in", "to", "from", "the", "and", "of", "on", "with", "a", "an"}


@dataclass
class MixedOptions:
    users: int
    duration: float
    warmup: float
    students: int
    #: The demo catalog, seeded as the catalog phase seeds it (nothing when it already did).
    courses: int
    sections: int
    lessons: int
    enrollments: int
    reviews: int


# -- the client -------------------------------------------------------------------------


def _headers(token: str | None, body: bytes | None, sse: bool) -> dict[str, str]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if sse:
        headers["Accept"] = "text/event-stream"
    if body is not None:
        headers["Content-Type"] = "application/json"
    return headers


# -- who does what ------------------------------------------------------------------------


def _token_expiry(token: str) -> float:
    """The ``exp`` of a JWT (not verified: only to know when to renew it); 0 if unknown."""
    try:
        payload = token.split(".")[1]
        doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(doc["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0


@dataclass
class Student:
    account: Account
    token: str
    expires: float
    #: Enrolled course id -> its lesson ids.
    enrolled: dict[str, list[str]] = field(default_factory=dict)
    completed: set[tuple[str, str]] = field(default_factory=set)
    #: Free courses not enrolled in yet, in the order this student will take them.
    to_enroll: list[str] = field(default_factory=list)
    session_id: str = ""
    questions: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Route:
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    failed: int = 0  # no answer (timeout, broken connection)
    signed_in: int = 0
    ai_limit: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies) + self.failed


@dataclass
class Context:
    stack: Stack
    students: list[Student]
    courses: list[dict[str, Any]]  # published, most popular first
    popularity: list[float]  # cumulative weights over ``courses``
    categories: list[str]
    words: list[str]
    free: dict[str, list[str]]  # free published course id -> lesson ids
    questions: TextGen
    measure_from: float = 0.0
    stop_at: float = 0.0
    routes: dict[str, Route] = field(default_factory=lambda: {r: Route() for r in ROUTES})
    actions: Counter[str] = field(default_factory=Counter)
    ai_skipped: int = 0
    renewed: int = 0
    driver_errors: int = 0
    offline_answers: int = 0
    examples: dict[str, str] = field(default_factory=dict)

    def measuring(self, started: float) -> bool:
        return started >= self.measure_from

    def record(
        self,
        route: str,
        started: float,
        answer: Answer | None,
        *,
        signed_in: bool,
        ok: bool | None = None,
        failure: str = "",
    ) -> None:
        """One request: kept when it started after the warm-up."""
        if not self.measuring(started):
            return
        stats = self.routes[route]
        stats.signed_in += signed_in
        if answer is None:
            stats.errors += 1
            stats.failed += 1
            stats.statuses[failure or "no answer"] += 1
            return
        stats.latencies.append(answer.ms)
        if route == ASK:
            stats.first_bytes.append(answer.first_byte_ms)
        if ok is None:
            ok = answer.status in EXPECTED[route]
        key = str(answer.status)
        if answer.status == 429 and b"daily_limit" in answer.body:
            stats.ai_limit += 1
            key = "429 (AI daily limit)"
        elif answer.status == 200 and not ok:
            key = "200 (incomplete stream)"
        stats.statuses[key] += 1
        if not ok:
            stats.errors += 1
            if route not in self.examples:
                self.examples[route] = (
                    f"{answer.status} {answer.body[:200].decode(errors='replace')}"
                )


@dataclass
class User:
    """One virtual user: a connection, a student to sign in as, where it is browsing."""

    index: int
    rng: random.Random
    student: Student
    conn: Connection
    next_query: str = ""  # the last listing's query with its next cursor
    seen: list[dict[str, Any]] = field(default_factory=list)  # the last page's courses


async def _token(ctx: Context, student: Student) -> str:
    """The student's access token, renewed by a sign-in at auth when it is about to expire."""
    if student.expires and time.time() > student.expires - TOKEN_MARGIN:
        async with student.lock:
            if time.time() > student.expires - TOKEN_MARGIN:
                async with httpx.AsyncClient(timeout=30.0) as client:
                    response = await client.post(
                        f"{ctx.stack.auth_url}{API}/auth/signin",
                        json={"email": student.account.email, "password": student.account.password},
                    )
                if response.status_code == 200:
                    student.token = response.json()["access_token"]
                    student.expires = _token_expiry(student.token)
                    ctx.renewed += 1
                else:
                    warn(PHASE, f"token renewal answered {response.status_code}")
    return student.token


async def _send(
    ctx: Context,
    user: User,
    route: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    sse: bool = False,
) -> Answer | None:
    started = time.perf_counter()
    try:
        answer = await user.conn.request(
            method, path, headers=_headers(token, body, sse), body=body
        )
    except TimeoutError:
        ctx.record(route, started, None, signed_in=token is not None, failure="timeout")
        return None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        ctx.record(route, started, None, signed_in=token is not None, failure=type(exc).__name__)
        await asyncio.sleep(0.01)
        return None
    ok = None
    if sse:
        ok = (
            answer.status == 200
            and b"event: done" in answer.body
            and b"event: error" not in answer.body
        )
    ctx.record(route, started, answer, signed_in=token is not None, ok=ok)
    return answer


async def _maybe_token(ctx: Context, user: User) -> str | None:
    if user.rng.random() < ANONYMOUS_SHARE:
        return None
    return await _token(ctx, user.student)


async def browse(ctx: Context, user: User) -> None:
    rng = user.rng
    token = await _maybe_token(ctx, user)
    if user.next_query and rng.random() < NEXT_PAGE_SHARE:
        route, query = NEXT_PAGE, user.next_query
    else:
        params: list[str] = []
        sort = rng.choices(["", "popular", "rating", "price"], weights=[40, 30, 20, 10])[0]
        if sort:
            params.append(f"sort={sort}")
        pick = rng.random()
        if pick < 0.4 and ctx.categories:
            params.append(f"category={quote(rng.choice(ctx.categories))}")
        elif pick < 0.5:
            params.append("free=true")
        route, query = BROWSE, "&".join(params)
    answer = await _send(
        ctx, user, route, "GET", f"{API}/courses" + (f"?{query}" if query else ""), token=token
    )
    user.next_query = ""
    if answer is not None and answer.status == 200:
        page = json.loads(answer.body)
        user.seen = page.get("items") or user.seen
        cursor = page.get("next_cursor")
        if cursor:
            base = re.sub(r"&?cursor=[^&]*", "", query).strip("&")
            user.next_query = (base + "&" if base else "") + f"cursor={quote(cursor)}"


async def search(ctx: Context, user: User) -> None:
    rng = user.rng
    token = await _maybe_token(ctx, user)
    words = rng.sample(ctx.words, 2 if rng.random() < 0.3 else 1)
    if rng.random() < 0.15 and len(words[-1]) >= 6:
        words[-1] = words[-1][: rng.randint(3, len(words[-1]) - 1)]  # a prefix, as typed
    answer = await _send(
        ctx, user, SEARCH, "GET", f"{API}/courses?q={quote(' '.join(words))}", token=token
    )
    if answer is not None and answer.status == 200:
        user.seen = json.loads(answer.body).get("items") or user.seen


async def detail(ctx: Context, user: User) -> None:
    rng = user.rng
    token = await _maybe_token(ctx, user)
    if user.seen and rng.random() < 0.5:
        course = rng.choice(user.seen)
    else:
        course = rng.choices(ctx.courses, cum_weights=ctx.popularity)[0]
    if rng.random() < 0.5:
        await _send(ctx, user, DETAIL_SLUG, "GET", f"{API}/courses/{course['slug']}", token=token)
    else:
        await _send(ctx, user, DETAIL_ID, "GET", f"{API}/courses/{course['id']}", token=token)


async def enroll(ctx: Context, user: User) -> None:
    student = user.student
    token = await _token(ctx, student)
    if student.to_enroll:
        course_id = student.to_enroll.pop()
    else:  # every free course taken: enrolling again is answered 200
        course_id = user.rng.choice(list(student.enrolled))
    answer = await _send(
        ctx, user, ENROLL, "POST", f"{API}/courses/{course_id}/enroll", token=token
    )
    if answer is not None and answer.status in (200, 201):
        student.enrolled.setdefault(course_id, ctx.free.get(course_id, []))


async def progress(ctx: Context, user: User) -> None:
    student = user.student
    token = await _token(ctx, student)
    courses = [c for c, lessons in student.enrolled.items() if lessons]
    if not courses:
        return await enroll(ctx, user)
    course_id = user.rng.choice(courses)
    lessons = student.enrolled[course_id]
    left = [lesson for lesson in lessons if (course_id, lesson) not in student.completed]
    lesson_id = left[0] if left else user.rng.choice(lessons)  # done: completing is idempotent
    answer = await _send(
        ctx,
        user,
        COMPLETE,
        "POST",
        f"{API}/courses/{course_id}/lessons/{lesson_id}/complete",
        token=token,
    )
    if answer is not None and answer.status == 200:
        student.completed.add((course_id, lesson_id))
    await _send(ctx, user, PROGRESS, "GET", f"{API}/courses/{course_id}/progress", token=token)


async def ai(ctx: Context, user: User) -> None:
    """A tutor question by a student who has some of the free plan's questions left."""
    n = len(ctx.students)
    asker = None
    for k in range(n):
        candidate = ctx.students[(user.index + k) % n]
        if candidate.session_id and candidate.questions < FREE_PLAN_QUESTIONS:
            asker = candidate
            break
    if asker is None:
        if ctx.measuring(time.perf_counter()):
            ctx.ai_skipped += 1
        asker = user.student
    else:
        asker.questions += 1
        token = await _token(ctx, asker)
        body = json.dumps({"content": ctx.questions.question()}).encode()
        started = time.perf_counter()
        answer = await _send(
            ctx,
            user,
            ASK,
            "POST",
            f"{API}/ai/sessions/{asker.session_id}/messages",
            token=token,
            body=body,
            sse=True,
        )
        if answer is not None and ctx.measuring(started) and _OFFLINE.search(answer.body):
            ctx.offline_answers += 1
    await _send(ctx, user, USAGE, "GET", f"{API}/ai/usage", token=await _token(ctx, asker))


ACTIONS = {
    "browse": browse,
    "search": search,
    "detail": detail,
    "enroll": enroll,
    "progress": progress,
    "ai": ai,
}


async def _virtual_user(ctx: Context, user: User) -> None:
    names = list(WEIGHTS)
    cumulative = list(accumulate(WEIGHTS[name] for name in names))
    try:
        while time.perf_counter() < ctx.stop_at:
            name = user.rng.choices(names, cum_weights=cumulative)[0]
            started = time.perf_counter()
            try:
                await ACTIONS[name](ctx, user)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a bug of the driver (an answer it did not expect)
                ctx.driver_errors += 1
                if ctx.driver_errors <= 3:
                    warn(PHASE, f"{name}: the driver failed", error=repr(exc))
                await asyncio.sleep(0.01)
                continue
            if ctx.measuring(started):
                ctx.actions[name] += 1
    finally:
        await user.conn.close()


async def _tick(ctx: Context, duration: float) -> None:
    """Progress about every quarter of the measured run (at most every 5 s)."""
    interval = min(5.0, max(1.0, duration / 4))
    while True:
        await asyncio.sleep(interval)
        now = time.perf_counter()
        if now < ctx.measure_from:
            log(PHASE, "warming up")
            continue
        done = sum(r.count for r in ctx.routes.values())
        errors = sum(r.errors for r in ctx.routes.values())
        elapsed = now - ctx.measure_from
        pct = min(100, int(100 * elapsed / duration))
        log(
            PHASE,
            f"mixed load {pct}%",
            percent=pct,
            requests=done,
            rps=round(done / elapsed, 1) if elapsed > 0 else None,
            errors=errors,
        )


# -- set-up -------------------------------------------------------------------------------


async def _all_pages(client: httpx.AsyncClient, url: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        response = await request_retrying(client, "GET", url, phase=PHASE, params=query)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _title_words(courses: list[dict[str, Any]]) -> list[str]:
    words: set[str] = set()
    for course in courses:
        for word in re.findall(r"[A-Za-z][A-Za-z-]+", course["title"]):
            if word.lower() not in _STOP_WORDS and len(word) >= 3:
                words.add(word)
    return sorted(words)


def _lesson_ids(course: dict[str, Any]) -> list[str]:
    return [lesson["id"] for section in course["sections"] for lesson in section["lessons"]]


async def _set_up(
    stack: Stack, *, admin_url: str, nats_url: str, opts: MixedOptions
) -> tuple[Context, dict[str, Any]]:
    gw = stack.gateway_url
    facts: dict[str, Any] = {}
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
    facts["seed"] = {k: v for k, v in seeded.items() if k != "output"}
    async with httpx.AsyncClient(timeout=30.0) as client:
        instructor = await sign_up(client, stack.auth_url, "mixed-instructor", role="instructor")
        tutor_course = await make_course(client, gw, instructor)
        log(PHASE, "tutor course made", course_id=tutor_course)
        started = time.perf_counter()
        gate = asyncio.Semaphore(4)  # argon2 at the production cost: a few at a time

        async def student(i: int) -> Student:
            async with gate:
                account = await sign_up(client, stack.auth_url, f"mixed{i}")
            return Student(account, account.access_token, _token_expiry(account.access_token))

        students = list(await asyncio.gather(*(student(i) for i in range(opts.students))))
        facts["signup_seconds"] = time.perf_counter() - started
        log(PHASE, f"{len(students)} students signed up in {facts['signup_seconds']:.1f}s")

        courses = await _all_pages(client, f"{gw}{API}/courses", {"sort": "popular"})
        categories = [c["slug"] for c in await _all_pages(client, f"{gw}{API}/categories", {})]
        if not courses:
            raise RuntimeError("the catalog shows no published course")
        free_ids = [c["id"] for c in courses if c["price"] == 0 and c["id"] != tutor_course]
        free_ids = [tutor_course, *free_ids[:FREE_COURSES_MAX]]

        async def lessons_of(course_id: str) -> tuple[str, list[str]]:
            response = await request_retrying(
                client, "GET", f"{gw}{API}/courses/{course_id}", phase=PHASE
            )
            response.raise_for_status()
            return course_id, _lesson_ids(response.json())

        free = dict(await gather_limited(8, [lessons_of(c) for c in free_ids]))
        free = {c: lessons for c, lessons in free.items() if lessons}
        tutor_lessons = free.get(tutor_course, [])
        seeded_free = [c for c in free if c != tutor_course]
        if not tutor_lessons or not seeded_free:
            raise RuntimeError("no free published course with lessons to enroll in")
        log(PHASE, f"{len(courses)} published courses, {len(free)} free ones with lessons")

        # Each student: the tutor course and one free seeded course, before the run.
        rnd = random.Random(17)
        for i, s in enumerate(students):
            first = seeded_free[i % len(seeded_free)]
            s.to_enroll = [c for c in seeded_free if c != first]
            rnd.shuffle(s.to_enroll)

        async def enroll_first(i: int, s: Student) -> None:
            for course_id in (tutor_course, seeded_free[i % len(seeded_free)]):
                response = await request_retrying(
                    client,
                    "POST",
                    f"{gw}{API}/courses/{course_id}/enroll",
                    phase=PHASE,
                    headers={"Authorization": f"Bearer {s.token}"},
                )
                if response.status_code not in (200, 201):
                    raise RuntimeError(
                        f"enroll answered {response.status_code}: {response.text[:300]}"
                    )
                s.enrolled[course_id] = free[course_id]

        await gather_limited(8, [enroll_first(i, s) for i, s in enumerate(students)])
        # The ai service learns the course and the enrollments from events: wait for them
        # (and for the seed's, when this phase seeded), then one session per student.
        facts["settle_seconds"] = await settle(
            stack, admin_url=admin_url, nats_url=nats_url, phase=PHASE
        )

        async def open_session(i: int, s: Student) -> None:
            lesson = tutor_lessons[i % len(tutor_lessons)]
            s.session_id = await new_session(
                client, gw, s.token, tutor_course, lesson_id=lesson, phase=PHASE
            )

        await gather_limited(8, [open_session(i, s) for i, s in enumerate(students)])
        log(PHASE, "every student has a tutor session")

    n = len(courses)
    ctx = Context(
        stack=stack,
        students=students,
        courses=courses,
        popularity=list(accumulate(1.0 / (1 + k) ** 0.8 for k in range(n))),
        categories=categories,
        words=_title_words(courses),
        free=free,
        questions=TextGen(seed=23),
    )
    facts.update(
        published_courses=n,
        free_courses=len(free),
        categories=len(categories),
        search_words=len(ctx.words),
        tutor_course=tutor_course,
    )
    return ctx, facts


# -- the phase ----------------------------------------------------------------------------


def _stack_processes(stack: Stack) -> list[tuple[str, int]]:
    """nginx (master and workers), every service's API and worker, and the sidecars."""
    from devstack.registry import SERVICES

    services = [s.name for s in SERVICES if s.name in stack.ports]
    sidecars = tuple(sc.name for s in SERVICES for sc in s.sidecars if sc.name in stack.ports)
    found = service_processes(
        services=services, ports=stack.ports, gateway_port=stack.gateway_port, sidecars=sidecars
    )
    masters = [
        ("nginx master", pid)
        for pid in (listening_pids(stack.gateway_port) if stack.gateway_port else [])
        if "nginx" in cmdline(pid) and "master process" in cmdline(pid)
    ]
    return masters + found


class CatalogGeneration:
    """How often the catalog's cached pages were retired, and how many were built since."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(redis_url)
        self.prefix = prefix

    async def generation(self) -> int:
        value = await self.redis.get(f"{self.prefix}:catalog:gen")
        return int(value or 0)

    async def pages_after(self, generation: int) -> int:
        """Catalog pages stored under a generation newer than ``generation``."""
        n = 0
        async for key in self.redis.scan_iter(match=f"{self.prefix}:catalog:*", count=1000):
            parts = key.decode(errors="replace").split(":")
            # p:catalog:<epoch>:<gen>:<hash>
            if len(parts) == 5 and parts[3].isdigit() and int(parts[3]) > generation:
                n += 1
        return n

    async def close(self) -> None:
        await self.redis.aclose()


async def run(
    *,
    stack: Stack,
    admin_url: str,
    nats_url: str,
    redis_url: str,
    opts: MixedOptions,
) -> PhaseResult:
    require_own_stack(stack, PHASE)
    result = PhaseResult(
        PHASE,
        "Mixed workload through the gateway: browse, search, detail, enroll, progress, AI",
    )
    ctx, facts = await _set_up(stack, admin_url=admin_url, nats_url=nats_url, opts=opts)
    users = [
        User(
            index=i,
            rng=random.Random(f"mixed-user:{i}"),
            student=ctx.students[i % len(ctx.students)],
            conn=Connection(stack.gateway_url, timeout=REQUEST_TIMEOUT),
        )
        for i in range(opts.users)
    ]
    catalog_cache = CatalogGeneration(
        redis_url, stack.extra_env.get("COURSES_CACHE_PREFIX", "courses")
    )
    procs = tuple(
        f"{name}-{kind}"
        for name in ("auth", "courses", "media", "ai", "payments", "analytics")
        for kind in ("api", "worker")
    )
    logs = LogWatch(stack, procs)
    watch = PeakWatch(_stack_processes(stack))
    log(
        PHASE,
        f"mixed load: {opts.users} virtual users for {opts.duration:g}s"
        + (f" after a {opts.warmup:g}s warm-up" if opts.warmup > 0 else ""),
        weights=WEIGHTS,
        students=len(ctx.students),
    )
    try:
        generation = await catalog_cache.generation()
        cpu_before = time.process_time()
        start = time.perf_counter()
        ctx.measure_from = start + opts.warmup
        ctx.stop_at = ctx.measure_from + opts.duration
        ticker = asyncio.create_task(_tick(ctx, opts.duration))
        everyone = asyncio.gather(*(_virtual_user(ctx, u) for u in users))
        try:
            if opts.warmup > 0:  # the generation at the end of the warm-up
                await asyncio.sleep(max(0.0, ctx.measure_from - time.perf_counter()))
                generation = await catalog_cache.generation()
            await asyncio.wait_for(everyone, opts.warmup + opts.duration + REQUEST_TIMEOUT + 10)
        finally:
            everyone.cancel()  # only matters when interrupted: the users are done otherwise
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        seconds = time.perf_counter() - ctx.measure_from
        driver_cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - start
        result.memory = watch.read()
        result.memory_note = (
            "VmHWM reset when the load began, after the set-up; warm-up included"
            if watch.reset_ok
            else watch.note
        )
        bumps = await catalog_cache.generation() - generation
        pages = await catalog_cache.pages_after(generation)
    finally:
        await catalog_cache.close()

    problems: list[str] = []
    total_errors = sum(r.errors for r in ctx.routes.values())
    explain_errors(PHASE, "mixed load", total_errors, logs, problems)

    # -- rows ----------------------------------------------------------------------------
    everything: list[float] = []
    raw_routes: dict[str, Any] = {}
    for route in ROUTES:
        stats = ctx.routes[route]
        n = stats.count
        if n == 0:
            continue
        d = Distribution.of(stats.latencies)
        everything += stats.latencies
        result.rows.append(
            Row(
                label=route,
                n=n,
                rate=n / seconds,
                p50=d.p50,
                p90=d.p90,
                p99=d.p99,
                max=d.max,
                errors=stats.errors,
            )
        )
        raw_routes[route] = {
            "n": n,
            "rps": n / seconds,
            "latency_ms": d.as_dict(),
            "statuses": dict(stats.statuses),
            "errors": stats.errors,
            "signed_in": stats.signed_in,
            "ai_daily_limit_429": stats.ai_limit,
            **(
                {"first_byte_ms": Distribution.of(stats.first_bytes).as_dict()}
                if stats.first_bytes
                else {}
            ),
        }
    total_n = sum(r.n for r in result.rows)
    all_d = Distribution.of(everything)
    result.rows.append(
        Row(
            label="all requests",
            n=total_n,
            rate=total_n / seconds,
            p50=all_d.p50,
            p90=all_d.p90,
            p99=all_d.p99,
            max=all_d.max,
            errors=total_errors,
        )
    )
    log(
        PHASE,
        "mixed load done",
        requests=total_n,
        rps=round(total_n / seconds, 1),
        p50_ms=round(all_d.p50, 2),
        p99_ms=round(all_d.p99, 2),
        errors=total_errors,
    )

    # -- how it was measured ----------------------------------------------------------------
    actions = sum(ctx.actions.values())
    asked = [s.questions for s in ctx.students]
    ask = ctx.routes[ASK]
    first = Distribution.of(ask.first_bytes)
    public = (BROWSE, NEXT_PAGE, SEARCH, DETAIL_SLUG, DETAIL_ID)
    signed = sum(ctx.routes[r].signed_in for r in public)
    public_total = sum(ctx.routes[r].count for r in public)
    seed = facts["seed"]
    result.lines += [
        f"{opts.users} closed-loop virtual users (one keep-alive connection each, an asyncio "
        f"client in the bench driver, no think time) through the gateway for "
        f"{opts.duration:g} s"
        + (f" after a {opts.warmup:g} s warm-up (not counted)" if opts.warmup > 0 else "")
        + f"; {actions} actions ({actions / seconds:,.0f}/s), "
        + ", ".join(f"{name} {ctx.actions[name]}" for name in WEIGHTS)
        + " (weights "
        + "/".join(str(w) for w in WEIGHTS.values())
        + "). Paths are under `/api/v1`; the rate is per second of the measured run "
        f"({seconds:.1f} s, until the last answer).",
        "Errors: answers other than the route's expected ones (200; enroll 200 or 201; a "
        "stream must end with `event: done`), timeouts and broken connections; the table "
        "counts every answer by status (a 429 of the AI daily limit apart). Latencies are "
        "those of the answers received, from the first byte sent to the last one read.",
        f"Data: the demo catalog (`courses_service seed --courses {opts.courses} --sections "
        f"{opts.sections} --lessons {opts.lessons} --enrollments {opts.enrollments} --reviews "
        f"{opts.reviews}`"
        + (" seeded here" if seed.get("seconds") else ", seeded earlier in the run")
        + f"): {facts['published_courses']} published courses, {facts['categories']} "
        f"categories; detail picks a course from the user's last page or, half the time, "
        f"from the whole catalog by popularity (a long tail); search uses "
        f"{facts['search_words']} words of the course titles, one or two (15 % a prefix).",
        f"Signed in: {signed} of the {public_total} browse, search and detail requests (the "
        "others anonymous); enroll, progress and AI always. "
        f"{len(ctx.students)} students signed up at auth, each enrolled beforehand in a free "
        "tutor course made through the gateway (three lessons of generated text, indexed by "
        "the ai service) and in one free seeded course; enroll takes a free published course "
        f"they are not in yet (of {facts['free_courses']} free courses with lessons)."
        + (f" {ctx.renewed} access tokens were renewed." if ctx.renewed else ""),
        "AI: each student has one tutor chat session on a lesson of the tutor course; "
        f"{ctx.offline_answers} of the {len(ask.latencies)} answers measured say they come "
        "from the offline provider (the dev stack has no model key); "
        f"{sum(asked)} questions in all (warm-up included), at most {max(asked, default=0)} "
        "per student "
        f"(the free plan allows {FREE_PLAN_QUESTIONS} a day; the stack the benchmark starts "
        "lifts that limit, `AI_FREE_DAILY_LIMIT`)"
        + (
            f"; {ctx.ai_skipped} ai actions found every student at {FREE_PLAN_QUESTIONS} and "
            "only read the usage"
            if ctx.ai_skipped
            else ""
        )
        + f"; 429 from the daily limit: {ask.ai_limit}. First streamed byte p50 "
        f"{ms(first.p50)} ms, p99 {ms(first.p99)} ms.",
        f"Catalog cache: every enrollment changes a course's `enrollment_count` and so "
        f"retires every cached catalog page (`catalog:gen` bumped {bumps} times during the "
        f"measured run); {pages} catalog pages were built and stored under the newer "
        f"generations, for {sum(ctx.routes[r].count for r in (BROWSE, NEXT_PAGE, SEARCH))} "
        "browse and search requests (pages built under the generation current at the start "
        "are not counted).",
        "Closed loop: when the stack slows down the users send less (coordinated omission); "
        "read each p99 as the latency under this concurrency, not at a fixed arrival rate. "
        f"The bench driver used {driver_cpu:.1f} s of CPU in the {wall:.1f} s of load "
        f"({100 * driver_cpu / max(wall, 1e-9):.0f} % of one core), taken from the stack.",
    ]
    if ctx.driver_errors:
        problems.append(
            f"{ctx.driver_errors} actions failed in the bench driver itself (see the progress "
            "log): they are not counted above."
        )
    for route, example in ctx.examples.items():
        problems.append(f"First unexpected answer of {route}: `{example[:240]}`")
    result.lines += problems
    result.raw = {
        "users": opts.users,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "measured_s": seconds,
        "weights": WEIGHTS,
        "actions": dict(ctx.actions),
        "routes": raw_routes,
        "total": {"n": total_n, "rps": total_n / seconds, "latency_ms": all_d.as_dict()},
        "errors": total_errors,
        "ai": {
            "questions": sum(asked),
            "max_per_student": max(asked, default=0),
            "skipped": ctx.ai_skipped,
            "daily_limit_429": ask.ai_limit,
            "offline_answers": ctx.offline_answers,
            "first_byte_ms": first.as_dict(),
        },
        "catalog_generation_bumps": bumps,
        "catalog_pages_built": pages,
        "tokens_renewed": ctx.renewed,
        "driver_errors": ctx.driver_errors,
        "driver_cpu_s": driver_cpu,
        **facts,
    }
    return result
