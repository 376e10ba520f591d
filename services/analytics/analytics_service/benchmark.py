"""Benchmarks of the analytics service, for bench/ (or ``python -m analytics_service.benchmark``).

- :func:`measure_ingest`: events per second from JetStream into facts and rollups. The
  events (a platform-like mix over every producing stream, 5 % of them redelivered) are
  published first; then the service's real consumers start and the clock runs until the
  last fact is stored. Everything runs on this machine: PostgreSQL, NATS and the
  consumers (one process) share its cores.
- :func:`measure_reports`: latency of the reports over a year of daily data, through the
  app in-process (token verification, queries, JSON/CSV), one request at a time. The
  data: ``courses`` courses of one instructor, each with 366 days of rollups in two
  currencies and 30 active learners a day drawn from its 400 students (of 8,000 on the
  platform); the platform rows for the same 366 days.

Both re-create the ``analytics`` schema in a database of their own (``database``) and
set the ``unpuzzle_analytics`` role's password to the one the test suite uses (the role
is cluster-wide). Each returns a plain dict of its numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from analytics_service.events import SUBSCRIPTIONS, build_consumers
from analytics_service.models import facts, platform_daily
from unpuzzle_common.db import create_engine, libpq_url, provision_service, session_factory
from unpuzzle_common.events import connect, jetstream_context
from unpuzzle_common.events import schemas as s
from unpuzzle_common.events.envelope import Envelope, subject_for
from unpuzzle_common.events.jetstream import PRODUCED_DOMAINS, ensure_service_stream
from unpuzzle_common.migrations import upgrade_to_head

SERVICE_DIR = Path(__file__).resolve().parent.parent
#: The role password the test suite also sets (the role is cluster-wide).
ROLE_PASSWORD = "test-password"
DEFAULT_DATABASE = "unpuzzle_bench_analytics"


def fresh_analytics_schema(admin_url: str, database: str) -> str:
    """Drop and re-create the ``analytics`` schema in ``database``; migrate; return its URL."""
    from sqlalchemy import make_url

    db_admin = (
        make_url(libpq_url(admin_url)).set(database=database).render_as_string(hide_password=False)
    )
    with contextlib.suppress(psycopg.OperationalError):  # no database yet: nothing to drop
        with psycopg.connect(db_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS analytics CASCADE"))
    url = provision_service(
        admin_url, service="analytics", password=ROLE_PASSWORD, database=database
    )
    upgrade_to_head(SERVICE_DIR, url)
    return url


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


# -- ingest -----------------------------------------------------------------------------


def platform_mix(n: int, *, seed: int = 1, days: int = 30) -> list[Envelope]:
    """``n`` events shaped like a day of the platform: mostly lesson completions."""
    rnd = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=days)
    users = [uuid.uuid4() for _ in range(2000)]
    courses = {uuid.uuid4(): rnd.choice(["usd", "eur"]) for _ in range(50)}
    course_ids = list(courses)
    out: list[Envelope] = []
    for course, currency in courses.items():
        data = s.CoursePublished(
            course_id=course, instructor_id=uuid.uuid4(), price=1999, currency=currency, title="T"
        )
        out.append(Envelope.new(data, source="courses"))
    while len(out) < n:
        user, course = rnd.choice(users), rnd.choice(course_ids)
        roll = rnd.random()
        data: s.EventData
        if roll < 0.45:
            data = s.LessonCompleted(user_id=user, course_id=course, lesson_id=uuid.uuid4())
        elif roll < 0.60:
            data = s.AiUsageRecorded(user_id=user, tokens=300, cost_micro_usd=900, agent="chat")
        elif roll < 0.70:
            data = s.EnrollmentCreated(
                enrollment_id=uuid.uuid4(), user_id=user, course_id=course, source="free"
            )
        elif roll < 0.78:
            data = s.PaymentSucceeded(
                payment_id=uuid.uuid4(),
                user_id=user,
                course_id=course,
                amount=1999,
                currency=courses[course],
            )
        elif roll < 0.84:
            data = s.ReviewCreated(course_id=course, user_id=user, rating=rnd.randint(1, 5))
        elif roll < 0.90:
            data = s.UserRegistered(user_id=user, email="u@example.com", full_name="U", roles=[])
        elif roll < 0.94:
            data = s.CourseCompleted(user_id=user, course_id=course)
        elif roll < 0.97:
            data = s.MediaUploaded(media_id=uuid.uuid4(), owner_id=user, content_type="video/mp4")
        else:
            data = s.SubscriptionActivated(user_id=user, plan="pro", ai_daily_limit=100)
        envelope = Envelope.new(data, source=_producer(data.event_type))
        when = start + timedelta(seconds=rnd.randrange(days * 86400))
        out.append(envelope.model_copy(update={"time": when}))
    return out


def _producer(event_type: str) -> str:
    domain = event_type.split(".")[0]
    return next(p for p, domains in PRODUCED_DOMAINS.items() if domain in domains)


async def measure_ingest(
    *,
    admin_url: str,
    nats_url: str,
    database: str = DEFAULT_DATABASE,
    events: int = 10_000,
    batch_size: int = 250,
    redelivered: float = 0.05,
    budget: float = 300.0,
) -> dict[str, Any]:
    """Publish ``events`` (+ ``redelivered`` duplicates), then time the consumers draining
    them into facts and rollups. ``batch_size`` 1 is the one-event-per-transaction path."""
    url = await asyncio.to_thread(fresh_analytics_schema, admin_url, database)
    stream = platform_mix(events)
    duplicates = random.Random(2).sample(stream, int(len(stream) * redelivered))
    prefix = "bench" + uuid.uuid4().hex[:8]
    nc = await asyncio.wait_for(connect(nats_url, "analytics-bench"), 10)
    js = jetstream_context(nc, timeout=30)
    engine = create_engine(url, pool_size=8, application_name="analytics-bench")
    sessions = session_factory(engine)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        for sub in SUBSCRIPTIONS:
            await ensure_service_stream(js, prefix, sub.producer)
        publish_started = time.perf_counter()
        # Redeliveries carry another Nats-Msg-Id, so only the inbox can catch them.
        sends = [(env, None) for env in stream] + [(env, f"dup-{env.id}") for env in duplicates]
        for start in range(0, len(sends), 500):
            await asyncio.gather(
                *(
                    js.publish(
                        subject_for(prefix, env.type),
                        env.to_json(),
                        headers={"Nats-Msg-Id": msg_id or str(env.id)},
                    )
                    for env, msg_id in sends[start : start + 500]
                )
            )
        publish_seconds = time.perf_counter() - publish_started

        consumers = build_consumers(
            js, sessions, prefix=prefix, batch_size=batch_size, fetch_timeout=0.5
        )
        started = time.perf_counter()
        tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
        stored = 0
        while stored < len(stream):
            if time.perf_counter() - started > budget:
                raise TimeoutError(f"only {stored} of {len(stream)} facts within {budget}s")
            await asyncio.sleep(0.05)
            async with sessions() as session:
                stored = (
                    await session.execute(select(func.count()).select_from(facts))
                ).scalar_one()
        elapsed = time.perf_counter() - started
        # Let the duplicates (published last) drain too, then check nothing double-counted.
        await asyncio.sleep(1.0)
        async with sessions() as session:
            counted = (
                await session.execute(select(func.sum(platform_daily.c.lesson_completions)))
            ).scalar_one()
            stored = (await session.execute(select(func.count()).select_from(facts))).scalar_one()
        expected = sum(1 for e in stream if e.type == s.LessonCompleted.event_type)
        return {
            "events": len(stream),
            "redelivered": len(duplicates),
            "batch_size": batch_size,
            "publish_seconds": round(publish_seconds, 2),
            "ingest_seconds": round(elapsed, 2),
            "events_per_second": round(len(stream) / elapsed),
            "facts_stored": stored,
            "rollups_consistent": counted == expected and stored == len(stream),
        }
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for info in await js.streams_info():
            if info.config.name.lower().startswith(prefix):
                await js.delete_stream(info.config.name)
        await nc.close()
        await engine.dispose()


# -- reports ----------------------------------------------------------------------------

_SEED = [
    """INSERT INTO analytics.courses (course_id, instructor_id, title, price, currency,
                                      is_published, state_time, state_event_id)
       SELECT c, :instructor, 'Course ' || left(c::text, 8), 1999, 'usd', true, now(),
              gen_random_uuid()
         FROM unnest(:ids) AS c""",
    """INSERT INTO analytics.course_daily
       SELECT c, d::date, 5 + (random() * 20)::int, (random() * 2)::int, 40 + (random() * 80)::int,
              (random() * 4)::int, n, n * 4, 30
         FROM unnest(:ids) AS c, generate_series(:start, :end, interval '1 day') AS d,
              LATERAL (SELECT (random() * 5)::int AS n) AS r""",
    """INSERT INTO analytics.course_revenue_daily
       SELECT c, d::date, cur, 3, 5997, 0, 0
         FROM unnest(:ids) AS c, generate_series(:start, :end, interval '1 day') AS d,
              unnest(ARRAY['eur', 'usd']) AS cur""",
    """INSERT INTO analytics.active_learners
       SELECT c, d::date,
              md5(((abs(hashtext(c::text)) + (k * 31 + i * 7) % 400) % 8000)::text)::uuid
         FROM unnest(:ids) AS c,
              generate_series(:start, :end, interval '1 day') WITH ORDINALITY AS g(d, i),
              generate_series(1, 30) AS k
       ON CONFLICT DO NOTHING""",
    """INSERT INTO analytics.platform_daily (day, new_users, enrollments, lesson_completions,
                                            active_learners, ai_requests, ai_tokens,
                                            ai_cost_micro_usd)
       SELECT d::date, 50, 400, 2000, 600, 900, 300000, 900000
         FROM generate_series(:start, :end, interval '1 day') AS d""",
    """INSERT INTO analytics.platform_revenue_daily
       SELECT d::date, cur, 60, 119940, 2, 3998
         FROM generate_series(:start, :end, interval '1 day') AS d,
              unnest(ARRAY['eur', 'usd']) AS cur""",
    """INSERT INTO analytics.platform_active_learners
       SELECT DISTINCT day, user_id FROM analytics.active_learners""",
    """INSERT INTO analytics.learner_activity
       SELECT course_id, user_id, range_agg(daterange(day, day, '[]'))
         FROM analytics.active_learners GROUP BY course_id, user_id""",
    """INSERT INTO analytics.platform_learner_activity
       SELECT user_id, range_agg(daterange(day, day, '[]'))
         FROM analytics.platform_active_learners GROUP BY user_id""",
]


async def _seed_year(
    url: str, instructor: uuid.UUID, course_ids: list[uuid.UUID], end: date
) -> int:
    engine = create_engine(url, pool_size=1)
    params = {
        "instructor": instructor,
        "ids": course_ids,
        "start": datetime.combine(end - timedelta(days=365), datetime.min.time()),
        "end": datetime.combine(end, datetime.min.time()),
    }
    try:
        async with engine.begin() as conn:
            for statement in _SEED:
                stmt = text(statement)
                if ":ids" in statement:
                    stmt = stmt.bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(stmt, used)
            learners = (
                await conn.execute(text("SELECT count(*) FROM analytics.active_learners"))
            ).scalar_one()
        async with engine.begin() as conn:
            for table in (
                "learner_activity",
                "platform_learner_activity",
                "courses",
                "course_daily",
                "course_revenue_daily",
                "active_learners",
                "platform_daily",
                "platform_revenue_daily",
                "platform_active_learners",
            ):
                await conn.execute(text(f"ANALYZE analytics.{table}"))
        return int(learners)
    finally:
        await engine.dispose()


async def measure_reports(
    *,
    admin_url: str,
    nats_url: str,
    redis_url: str,
    database: str = DEFAULT_DATABASE,
    courses: int = 20,
    requests: int = 200,
) -> dict[str, Any]:
    """p50/p99 of each report over the last 366 days, ``requests`` sequential calls each."""
    import httpx
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from analytics_service.main import create_app
    from analytics_service.settings import Settings
    from unpuzzle_common.auth import TokenVerifier, VerificationKey

    url = await asyncio.to_thread(fresh_analytics_schema, admin_url, database)
    instructor = uuid.uuid4()
    course_ids = [uuid.uuid4() for _ in range(courses)]
    today = datetime.now(UTC).date()
    learners = await _seed_year(url, instructor, course_ids, today)

    key = ec.generate_private_key(ec.SECP256R1())
    public = VerificationKey(kid="bench", alg="ES256", key=key.public_key())

    async def lookup(kid: str) -> VerificationKey | None:
        return public if kid == "bench" else None

    def token(user_id: uuid.UUID, roles: list[str]) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "roles": roles,
            "iss": "unpuzzle-auth",
            "aud": "unpuzzle-api",
            "iat": now,
            "exp": now + timedelta(minutes=15),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench"})

    settings = Settings(
        database_url=url, nats_url=nats_url, redis_url=redis_url, log_level="WARNING"
    )
    app = create_app(
        settings,
        token_verifier=TokenVerifier(lookup, issuer="unpuzzle-auth", audience="unpuzzle-api"),
    )
    owner = {"Authorization": f"Bearer {token(instructor, ['instructor'])}"}
    admin = {"Authorization": f"Bearer {token(uuid.uuid4(), ['admin'])}"}
    year = {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
    cases = {
        "baseline: GET /healthz": ("/healthz", {}, {}),
        "course (366 days)": (f"/api/v1/analytics/courses/{course_ids[0]}", year, owner),
        "course CSV (366 days)": (
            f"/api/v1/analytics/courses/{course_ids[0]}",
            year,
            {**owner, "Accept": "text/csv"},
        ),
        f"instructor, {courses} courses (366 days)": (
            "/api/v1/analytics/instructors/me",
            year,
            owner,
        ),
        "platform (366 days)": ("/api/v1/analytics/platform", year, admin),
        "daily (computed)": ("/api/v1/analytics/reports/daily", {"date": year["to"]}, admin),
    }
    results: dict[str, Any] = {
        "courses": courses,
        "days": 366,
        "active_learner_rows": learners,
        "requests_per_report": requests,
        "reports": {},
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, (path, params, headers) in cases.items():
                for _ in range(5):  # warm-up: pool connections, caches
                    await client.get(path, params=params, headers=headers)
                latencies = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await client.get(path, params=params, headers=headers)
                    latencies.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
                results["reports"][name] = {
                    "p50_ms": round(_percentile(latencies, 50), 2),
                    "p99_ms": round(_percentile(latencies, 99), 2),
                    "max_ms": round(max(latencies), 2),
                    "bytes": len(response.content),
                }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_service.benchmark", description=__doc__
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument(
        "--compare-unbatched",
        type=int,
        default=0,
        metavar="N",
        help="also ingest N events one per transaction (batch size 1)",
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--courses", type=int, default=20)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args(argv)
    admin_url = os.environ.get(
        "UNPUZZLE_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    nats_url = os.environ.get("UNPUZZLE_NATS_URL", "nats://127.0.0.1:4222")
    redis_url = os.environ.get("UNPUZZLE_REDIS_URL", "redis://127.0.0.1:6379/0")

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {
            "ingest": await measure_ingest(
                admin_url=admin_url,
                nats_url=nats_url,
                database=args.database,
                events=args.events,
                batch_size=args.batch_size,
            )
        }
        if args.compare_unbatched:
            out["ingest_unbatched"] = await measure_ingest(
                admin_url=admin_url,
                nats_url=nats_url,
                database=args.database,
                events=args.compare_unbatched,
                batch_size=1,
            )
        out["reports"] = await measure_reports(
            admin_url=admin_url,
            nats_url=nats_url,
            redis_url=redis_url,
            database=args.database,
            courses=args.courses,
            requests=args.requests,
        )
        return out

    print(json.dumps(asyncio.run(run()), indent=2))


if __name__ == "__main__":
    main()
