"""Tutor (issue 6): first streamed byte of an answer, and retrieval over 10,000 passages.

*Streaming* (with the stack up): an instructor makes a free course through the gateway
(one section, three lessons of generated text) and publishes it; a student enrolls;
once the ai service has the course and the enrollment (its consumers), the student asks
``POST /api/v1/ai/sessions/{id}/messages`` with ``Accept: text/event-stream``, one
message at a time, through the gateway, with the offline provider (no model key in the
dev stack). A raw keep-alive HTTP/1.1 client times the response headers, the first
body byte (the first ``event: token``) and the end of the stream (``event: done``).
A new session every 25 messages keeps the history short. The stack the benchmark
starts lifts the free plan's daily limit (``AI_FREE_DAILY_LIMIT``).

*Retrieval* (in-process, after the stack stopped): the ``ai`` schema is re-created in a
database of its own and filled with 10,000 passages of generated text (half in one large
course — 500 lessons, or 100 lessons with long video transcripts — and half over 25
courses of 200; one in ten a transcript, reached through its lesson's media; see
:mod:`bench.textgen` for the words), then ``ai_service.retrieval.search`` answers
generated questions, each in its own session as the service does: p50/p99 for the large
course and for a typical one (target p99 < 20 ms; both are judged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench.accounts import Account, sign_up
from bench.http1 import Connection
from bench.phase import PhaseResult, Row, verdict
from bench.procmem import PeakWatch, service_processes
from bench.progress import Ticker, log, warn
from bench.stack import REPO, Stack
from bench.stackenv import (
    LogWatch,
    admin_db_url,
    explain_errors,
    request_retrying,
    require_own_stack,
    settle,
)
from bench.stats import Distribution, ms
from bench.textgen import TextGen

PHASE = "tutor"
TARGET_FIRST_BYTE_P99_MS = 50.0
TARGET_RETRIEVAL_P99_MS = 20.0
AI_DIR = REPO / "services" / "ai"
#: The role password the test suite also sets (the role is cluster-wide).
ROLE_PASSWORD = "test-password"
MESSAGES_PER_SESSION = 25


def new_result() -> PhaseResult:
    return PhaseResult(PHASE, "Tutor: first streamed byte through the gateway, and retrieval")


# -- streaming ----------------------------------------------------------------------------------


async def make_course(client: httpx.AsyncClient, gw: str, instructor: Account) -> str:
    """A free published course with three lessons of generated text; its id."""
    text = TextGen(seed=11)
    auth = {"Authorization": f"Bearer {instructor.access_token}"}

    async def post(path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        response = await request_retrying(
            client, "POST", gw + path, phase=PHASE, json=body, headers=auth
        )
        if response.status_code != expect:
            raise RuntimeError(
                f"POST {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    course = await post(
        "/api/v1/courses",
        {"title": "Bench tutor course", "description": text.text(300), "price": 0},
        201,
    )
    base = f"/api/v1/courses/{course['id']}"
    section = await post(f"{base}/sections", {"title": "Foundations"}, 201)
    for i in range(3):
        await post(
            f"{base}/sections/{section['id']}/lessons",
            {"title": f"Lesson {i + 1}: {text.term()}", "content": f"<p>{text.text(2500)}</p>"},
            201,
        )
    await post(f"{base}/publish", {}, 200)
    return str(course["id"])


async def new_session(
    client: httpx.AsyncClient,
    gw: str,
    token: str,
    course_id: str,
    *,
    lesson_id: str | None = None,
    phase: str = PHASE,
    within: float = 60.0,
) -> str:
    """A chat session on the course (on one lesson when given); 403/404 until the ai
    service has heard of both."""
    body = {"course_id": course_id, "session_type": "chat"}
    if lesson_id is not None:
        body["lesson_id"] = lesson_id
    deadline = time.monotonic() + within
    while True:
        response = await request_retrying(
            client,
            "POST",
            gw + "/api/v1/ai/sessions",
            phase=phase,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 201:
            return str(response.json()["id"])
        if response.status_code in (403, 404) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            continue
        raise RuntimeError(
            f"POST /api/v1/ai/sessions answered {response.status_code}: {response.text[:300]}"
        )


async def _ask(conn: Connection, path: str, token: str, body: bytes) -> dict[str, Any]:
    """One streamed answer: when its headers, its first token and its end arrived."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
    }
    answer = await conn.request("POST", path, headers=headers, body=body)
    text = answer.body.decode(errors="replace")
    return {
        "status": answer.status,
        "headers_ms": answer.headers_ms,
        "first_byte_ms": answer.first_byte_ms,
        "end_ms": answer.ms,
        "ok": answer.status == 200 and "event: done" in text and "event: error" not in text,
        "tokens": text.count("event: token"),
        "first": text[:80],
    }


async def run_stream(
    *, stack: Stack, admin_url: str, nats_url: str, messages: int, quick: bool
) -> PhaseResult:
    require_own_stack(stack, PHASE)
    result = new_result()
    gw = stack.gateway_url
    async with httpx.AsyncClient(timeout=30.0) as client:
        instructor = await sign_up(client, stack.auth_url, "tutor-instructor", role="instructor")
        student = await sign_up(client, stack.auth_url, "tutor-student")
        course_id = await make_course(client, gw, instructor)
        enrolled = await request_retrying(
            client,
            "POST",
            f"{gw}/api/v1/courses/{course_id}/enroll",
            phase=PHASE,
            headers={"Authorization": f"Bearer {student.access_token}"},
        )
        if enrolled.status_code not in (200, 201):
            raise RuntimeError(f"enroll answered {enrolled.status_code}: {enrolled.text[:300]}")
        await settle(stack, admin_url=admin_url, nats_url=nats_url, phase=PHASE, within=60)
        session = await new_session(client, gw, student.access_token, course_id)
        log(PHASE, "the ai service knows the course and the enrollment", course_id=course_id)

        questions = TextGen(seed=5)
        sse = Connection(gw)
        watch = PeakWatch(
            service_processes(services=["ai"], ports=stack.ports, gateway_port=stack.gateway_port)
        )
        samples: list[dict[str, Any]] = []
        errors = 0
        logs = LogWatch(stack, ("ai-api",))
        try:
            for _ in range(3):  # warm-up: connections, prepared statements
                await _ask(
                    sse,
                    f"/api/v1/ai/sessions/{session}/messages",
                    student.access_token,
                    json.dumps({"content": questions.question()}).encode(),
                )
            ticker = Ticker(PHASE, f"streamed answers ({messages})", messages)
            for i in range(messages):
                if i % MESSAGES_PER_SESSION == 0:
                    session = await new_session(client, gw, student.access_token, course_id)
                sample = await _ask(
                    sse,
                    f"/api/v1/ai/sessions/{session}/messages",
                    student.access_token,
                    json.dumps({"content": questions.question()}).encode(),
                )
                if sample["ok"]:
                    samples.append(sample)
                else:
                    errors += 1
                    if errors <= 3:
                        warn(PHASE, "an answer was not a complete stream", **sample)
                ticker.update(i + 1)
        finally:
            await sse.close()
        result.memory = watch.read()
        result.memory_note = watch.note
        explain_errors(PHASE, "streamed answers", errors, logs, result.lines)

    first = Distribution.of([s["first_byte_ms"] for s in samples])
    headers = Distribution.of([s["headers_ms"] for s in samples])
    end = Distribution.of([s["end_ms"] for s in samples])
    tokens = sum(s["tokens"] for s in samples) / max(1, len(samples))
    log(PHASE, "streaming done", n=first.n, p50_ms=round(first.p50, 2), p99_ms=round(first.p99, 2))
    result.rows += [
        Row.of_dist("SSE: response headers", headers, errors=errors),
        Row.of_dist("SSE: first streamed byte (event: token)", first, errors=errors),
        Row.of_dist("SSE: whole answer (event: done)", end, errors=errors),
    ]
    result.target(
        f"time to first streamed byte p99 < {TARGET_FIRST_BYTE_P99_MS:g} ms",
        f"p99 {ms(first.p99)} ms (p50 {ms(first.p50)} ms, n={first.n})",
        None if first.n == 0 else first.p99 < TARGET_FIRST_BYTE_P99_MS and errors == 0,
    )
    result.lines.append(
        f"{messages} messages, one at a time, through the gateway, offline provider; "
        f"{tokens:.0f} token events per answer on average; a new session every "
        f"{MESSAGES_PER_SESSION} messages; times from sending the request."
    )
    result.raw["stream"] = {
        "first_byte_ms": first.as_dict(),
        "headers_ms": headers.as_dict(),
        "end_ms": end.as_dict(),
        "errors": errors,
        "tokens_per_answer": tokens,
    }
    for t in result.targets:
        log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    return result


# -- retrieval ------------------------------------------------------------------------------


def fresh_ai_schema(admin_url: str, database: str) -> str:
    """Drop and re-create the ``ai`` schema in ``database``; migrate it; return its URL."""
    from unpuzzle_common.db import provision_service
    from unpuzzle_common.migrations import upgrade_to_head

    with contextlib.suppress(psycopg.OperationalError):  # no database yet: nothing to drop
        with psycopg.connect(admin_db_url(admin_url, database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS ai CASCADE"))
    url = provision_service(admin_url, service="ai", password=ROLE_PASSWORD, database=database)
    upgrade_to_head(AI_DIR, url)
    return url


def _layout(total: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], uuid.UUID, uuid.UUID]:
    """Lessons and passages: half of ``total`` in one course, the rest in courses of 200.

    Every lesson has 10 passages; the 10th is a transcript of the lesson's media. Returns
    (lessons, passages, the large course, one small course).
    """
    text = TextGen(seed=3)
    per_lesson = 10
    big = uuid.uuid5(uuid.NAMESPACE_URL, "bench-ai-big")
    courses: list[tuple[uuid.UUID, int]] = [(big, total // 2)]
    rest = total - total // 2
    small_size = 200
    index = 0
    while rest > 0:
        courses.append((uuid.uuid5(uuid.NAMESPACE_URL, f"bench-ai-{index}"), min(small_size, rest)))
        rest -= small_size
        index += 1
    lessons: list[dict[str, Any]] = []
    passages: list[dict[str, Any]] = []
    for course_id, count in courses:
        for position in range(-(-count // per_lesson)):
            lesson_id = uuid.uuid4()
            media_id = uuid.uuid4()
            lessons.append(
                {
                    "course_id": course_id,
                    "lesson_id": lesson_id,
                    "title": f"Lesson {position + 1}: {text.term()}",
                    "position": position,
                    "media_id": media_id,
                    "content_hash": None,
                }
            )
            n = min(per_lesson, count - position * per_lesson)
            for part in range(n):
                transcript = part == per_lesson - 1
                passages.append(
                    {
                        "source": "transcript" if transcript else "lesson",
                        "course_id": None if transcript else course_id,
                        "lesson_id": None if transcript else lesson_id,
                        "media_id": media_id if transcript else None,
                        "position": part,
                        "content": text.text(650),
                        "start_seconds": 60.0 * part if transcript else None,
                        "end_seconds": 60.0 * part + 55 if transcript else None,
                    }
                )
    return lessons, passages, big, courses[1][0] if len(courses) > 1 else big


async def run_retrieval(
    result: PhaseResult, *, admin_url: str, database: str, passages: int, queries: int
) -> None:
    from sqlalchemy import insert, text

    from ai_service import retrieval
    from ai_service.models import course_lessons
    from ai_service.models import passages as passages_table
    from ai_service.settings import Settings
    from unpuzzle_common.db import create_engine, session_factory

    log(PHASE, "fresh ai schema for retrieval", database=database)
    url = await asyncio.to_thread(fresh_ai_schema, admin_url, database)
    lessons, rows, big, small = _layout(passages)
    engine = create_engine(url, pool_size=4, application_name="bench-retrieval")
    sessions = session_factory(engine)
    limit = Settings().passages_per_answer
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(insert(course_lessons), lessons)
            for i in range(0, len(rows), 1000):
                await conn.execute(insert(passages_table), rows[i : i + 1000])
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE ai.passages"))
            await conn.execute(text("ANALYZE ai.course_lessons"))
        load_s = time.perf_counter() - started
        log(PHASE, f"{len(rows)} passages indexed in {load_s:.1f}s")
        by_course: dict[uuid.UUID, list[uuid.UUID]] = {}
        for lesson in lessons:
            by_course.setdefault(lesson["course_id"], []).append(lesson["lesson_id"])
        course_of_media = {lesson["media_id"]: lesson["course_id"] for lesson in lessons}
        count: dict[uuid.UUID, int] = {}
        for row in rows:
            key = row["course_id"] or course_of_media[row["media_id"]]
            count[key] = count.get(key, 0) + 1
        rnd = random.Random(9)
        layouts = [
            (f"retrieval, course of {count[big]:,} passages (of {len(rows):,})", big),
            (f"retrieval, course of {count[small]:,} passages (of {len(rows):,})", small),
        ]
        questions = TextGen(seed=13)
        found: dict[str, float] = {}
        for label, course_id in layouts:
            latencies: list[float] = []
            hits = 0
            ticker = Ticker(PHASE, label, queries)
            for i in range(queries + 10):
                lesson_id = rnd.choice(by_course[course_id]) if rnd.random() < 0.5 else None
                started = time.perf_counter()
                async with sessions() as session:
                    got = await retrieval.search(
                        session,
                        course_id=course_id,
                        query=questions.question(),
                        limit=limit,
                        lesson_id=lesson_id,
                    )
                elapsed = (time.perf_counter() - started) * 1000
                if i >= 10:  # the first ten warm the pool and the caches
                    latencies.append(elapsed)
                    hits += len(got)
                    ticker.update(i - 9)
            d = Distribution.of(latencies)
            found[label] = hits / max(1, len(latencies))
            result.rows.append(Row.of_dist(label, d))
            result.raw.setdefault("retrieval", {})[label] = d.as_dict()
            log(PHASE, f"{label} done", p50_ms=round(d.p50, 2), p99_ms=round(d.p99, 2))
        for (label, course_id), kind in zip(layouts, ("a large", "a typical"), strict=True):
            row = next(r for r in result.rows if r.label == label)
            result.target(
                f"retrieval over {len(rows):,} passages p99 < {TARGET_RETRIEVAL_P99_MS:g} ms, "
                f"{kind} course ({count[course_id]:,} of them)",
                f"p99 {ms(row.p99)} ms (p50 {ms(row.p50)} ms)",
                None if row.n == 0 else row.p99 < TARGET_RETRIEVAL_P99_MS,
            )
        result.lines.append(
            f"Retrieval: in-process, `ai_service.retrieval.search` (top {limit}, half the "
            f"questions on a lesson), {queries} generated questions per layout after 10 to "
            f"warm up, each in its own session; {len(rows):,} passages of ~650 characters "
            f"loaded in {load_s:.1f} s; passages found per question: "
            + ", ".join(f"{v:.1f}" for v in found.values())
            + "."
        )
        for t in result.targets[-2:]:
            log(PHASE, f"target {t.what}: {verdict(t.met)}", measured=t.measured)
    finally:
        await engine.dispose()
