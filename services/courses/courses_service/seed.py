"""A realistic demo catalog: ``python -m courses_service seed [--courses N] [--reset]``.

Loads categories, instructors and students (into the users read model), courses with
sections and lessons, enrollments and reviews, then recomputes every seeded course's
aggregates in one statement per table. Everything is derived from fixed seeds and
deterministic ids, and inserted with ``ON CONFLICT DO NOTHING``: running it twice
changes nothing, running it with a larger ``--courses`` adds the difference.

Newly seeded published courses are announced with ``course.published.v1`` (so the
payments service knows their prices); seeded enrollments and reviews are not
announced (analytics starts from live traffic). Seeded users exist only in this
service's read model: they cannot sign in.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Table, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.models import (
    ACTIVE,
    categories,
    courses,
    enrollments,
    lessons,
    outbox,
    payment_grants,
    reviews,
    sections,
    users,
)
from courses_service.seed_data import (
    CATEGORIES,
    COMMENTS,
    FIRST,
    LAST,
    LESSON_NAMES,
    PATTERNS,
    PRICES,
    SECTION_NAMES,
    STYLES,
)
from courses_service.settings import Settings
from courses_service.text import slugify
from unpuzzle_common.db import create_engine, session_factory
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.outbox import outbox_channel
from unpuzzle_common.events.schemas import CoursePublished

NAMESPACE = uuid.UUID("5eed0000-0000-4000-8000-00000000c0de")
SEED_EMAIL_DOMAIN = "seed.unpuzzle.dev"


@dataclass(frozen=True)
class SeedPlan:
    """How much to load. ``None`` sections/lessons vary per course (3-6 and 2-5)."""

    courses: int = 300
    sections_per_course: int | None = None
    lessons_per_section: int | None = None
    enrollments: int | None = None
    reviews: int | None = None
    reset: bool = False

    @property
    def enrollment_target(self) -> int:
        return self.courses * 10 if self.enrollments is None else self.enrollments

    @property
    def review_target(self) -> int:
        return self.courses * 4 if self.reviews is None else self.reviews


def seed_id(kind: str, key: object) -> uuid.UUID:
    """The deterministic id of a seeded entity."""
    return uuid.uuid5(NAMESPACE, f"{kind}:{key}")


Out = Callable[[str], None]


class _Progress:
    def __init__(self, out: Out) -> None:
        self.out = out
        self.started = time.monotonic()

    def step(self, what: str, inserted: int, total: int, since: float) -> None:
        took = time.monotonic() - since
        self.out(f"  {what:<13} {inserted:>7} new / {total:>7} planned  ({took:.2f}s)")


async def _insert(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], key: str = "id"
) -> list[Any]:
    """Bulk insert skipping rows that exist; returns the keys of the rows inserted.

    Rows are streamed with ``COPY`` into a temporary table, then moved with one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING``: tens of thousands of rows a second.
    Tables with a deferrable unique constraint (positions) cannot use it as a conflict
    arbiter, so there the target is the primary key alone.
    """
    if not rows:
        return []
    columns = list(rows[0])
    staging = f"seed_{table.name}"
    names = ", ".join(f'"{c}"' for c in columns)
    # The loaded columns' types only: no constraints (generated columns stay out of it).
    await session.execute(
        text(
            f"CREATE TEMP TABLE {staging} AS SELECT {names} FROM {table.schema}.{table.name} "
            "WITH NO DATA"
        )
    )
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    async with raw.cursor() as cursor:
        async with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row([row[c] for c in columns])
    deferrable = any(getattr(c, "deferrable", False) for c in table.constraints)
    target = f'("{key}")' if deferrable else ""
    result = await session.execute(
        text(
            f"INSERT INTO {table.schema}.{table.name} ({names}) SELECT {names} FROM {staging} "
            f'ON CONFLICT {target} DO NOTHING RETURNING "{key}"'
        )
    )
    inserted = list(result.scalars())
    await session.execute(text(f"DROP TABLE {staging}"))
    return inserted


def _people(kind: str, count: int, role: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        first = FIRST[i % len(FIRST)]
        last = LAST[(i * 7 + len(kind)) % len(LAST)]
        rows.append(
            {
                "id": seed_id(kind, i),
                "email": f"{kind}{i}@{SEED_EMAIL_DOMAIN}",
                "full_name": f"{first} {last}",
                "roles": [role],
                "event_time": now,
            }
        )
    return rows


def _course_rows(
    plan: SeedPlan, instructors: list[uuid.UUID], now: datetime
) -> tuple[list[dict], list[dict], list[dict]]:
    """Courses, sections and lessons; each course's randomness comes from its own seed."""
    category_names = list(CATEGORIES)
    course_rows: list[dict] = []
    section_rows: list[dict] = []
    lesson_rows: list[dict] = []
    seen_slugs: set[str] = set()
    for i in range(plan.courses):
        rng = random.Random(f"course:{i}")
        category = category_names[i % len(category_names)]
        topic = rng.choice(CATEGORIES[category])
        title = rng.choice(PATTERNS).format(topic=topic)
        slug = slugify(title)
        n = 2
        while slug in seen_slugs:
            slug = f"{slugify(title)}-{n}"
            n += 1
        seen_slugs.add(slug)
        free = rng.random() < 0.2
        created = now - timedelta(days=rng.uniform(1, 720), seconds=i)
        published = rng.random() < 0.92
        course_id = seed_id("course", i)
        course_rows.append(
            {
                "id": course_id,
                "title": title,
                "slug": slug,
                "description": (
                    f"<p>Learn {topic} step by step with {rng.choice(STYLES)} "
                    f"exercises.</p><p>This {category.lower()} course takes you from the basics of "
                    f"{topic} to confident, independent work, with projects you can show.</p>"
                ),
                "instructor_id": instructors[rng.randrange(len(instructors))],
                "category_id": seed_id("category", category),
                "price": 0 if free else rng.choice(PRICES),
                "currency": "eur" if rng.random() < 0.1 else "usd",
                "is_published": published,
                "published_at": created + timedelta(days=1) if published else None,
                "created_at": created,
                "updated_at": created,
            }
        )
        n_sections = plan.sections_per_course or rng.randint(3, 6)
        for s in range(n_sections):
            section_id = seed_id("section", f"{i}:{s}")
            section_rows.append(
                {
                    "id": section_id,
                    "course_id": course_id,
                    "title": f"{SECTION_NAMES[s % len(SECTION_NAMES)]}",
                    "position": s,
                }
            )
            n_lessons = plan.lessons_per_section or rng.randint(2, 5)
            for n_lesson in range(n_lessons):
                lesson_rows.append(
                    {
                        "id": seed_id("lesson", f"{i}:{s}:{n_lesson}"),
                        "course_id": course_id,
                        "section_id": section_id,
                        "title": f"{LESSON_NAMES[(s + n_lesson) % len(LESSON_NAMES)]}: {topic}",
                        "content": f"<p>Notes for this lesson on {topic}.</p>",
                        "duration_seconds": rng.randint(120, 1200),
                        "position": n_lesson,
                    }
                )
    return course_rows, section_rows, lesson_rows


def _enrollment_rows(
    plan: SeedPlan, published: list[dict], students: list[uuid.UUID]
) -> tuple[list[dict], list[dict]]:
    rng = random.Random("enrollments")
    target = min(plan.enrollment_target, len(published) * len(students))
    pairs: set[tuple[int, int]] = set()
    # Popularity follows a long tail: a few courses get many students.
    cumulative = list(accumulate(1.0 / (1 + (k % 50)) for k in range(len(published))))
    while len(pairs) < target:
        drawn = rng.choices(range(len(published)), cum_weights=cumulative, k=target - len(pairs))
        pairs.update((course_index, rng.randrange(len(students))) for course_index in drawn)
    enrollment_rows, grant_rows = [], []
    for course_index, student_index in sorted(pairs):
        course = published[course_index]
        user_id = students[student_index]
        source = "free"
        if course["price"] > 0:
            payment_id = seed_id("payment", f"{course['id']}:{user_id}")
            source = str(payment_id)
            grant_rows.append(
                {
                    "payment_id": payment_id,
                    "user_id": user_id,
                    "course_id": course["id"],
                    "status": "granted",
                }
            )
        enrollment_rows.append(
            {
                "id": seed_id("enrollment", f"{course['id']}:{user_id}"),
                "user_id": user_id,
                "course_id": course["id"],
                "source": source,
                "status": ACTIVE,
            }
        )
    return enrollment_rows, grant_rows


def _review_rows(plan: SeedPlan, enrollment_rows: list[dict]) -> list[dict]:
    rng = random.Random("reviews")
    chosen = rng.sample(enrollment_rows, min(plan.review_target, len(enrollment_rows)))
    return [
        {
            "id": seed_id("review", f"{e['course_id']}:{e['user_id']}"),
            "course_id": e["course_id"],
            "user_id": e["user_id"],
            "rating": rng.choices([5, 4, 3, 2, 1], weights=[45, 30, 14, 7, 4])[0],
            "comment": rng.choice(COMMENTS),
        }
        for e in chosen
    ]


_RECOMPUTE = text(
    """
    WITH l AS (SELECT course_id, count(*) AS n, coalesce(sum(duration_seconds), 0) AS s
                 FROM courses.lessons WHERE course_id = ANY(:ids) GROUP BY course_id),
         e AS (SELECT course_id, count(*) AS n FROM courses.enrollments
                WHERE status = 'active' AND course_id = ANY(:ids) GROUP BY course_id),
         r AS (SELECT course_id, count(*) AS n, sum(rating) AS s
                 FROM courses.reviews WHERE course_id = ANY(:ids) GROUP BY course_id),
         t AS (SELECT c.id, coalesce(l.n, 0) AS ln, coalesce(l.s, 0) AS ls,
                      coalesce(e.n, 0) AS en, coalesce(r.n, 0) AS rn, coalesce(r.s, 0) AS rs
                 FROM courses.courses c
                 LEFT JOIN l ON l.course_id = c.id
                 LEFT JOIN e ON e.course_id = c.id
                 LEFT JOIN r ON r.course_id = c.id
                WHERE c.id = ANY(:ids))
    UPDATE courses.courses AS c
       SET lesson_count = t.ln, total_duration = t.ls, enrollment_count = t.en,
           rating_count = t.rn, rating_sum = t.rs
      FROM t
     WHERE c.id = t.id
       AND (c.lesson_count, c.total_duration, c.enrollment_count, c.rating_count, c.rating_sum)
           IS DISTINCT FROM (t.ln, t.ls, t.en, t.rn, t.rs)
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def _recompute_aggregates(session: AsyncSession, course_ids: Iterable[uuid.UUID]) -> None:
    """Every aggregate of the seeded courses from their rows (unchanged rows untouched)."""
    await session.execute(_RECOMPUTE, {"ids": list(course_ids)})


async def _announce(session: AsyncSession, published: list[dict]) -> None:
    """``course.published.v1`` for newly seeded published courses, in one insert."""
    rows = []
    for course in published:
        envelope = Envelope.new(
            CoursePublished(
                course_id=course["id"],
                instructor_id=course["instructor_id"],
                price=course["price"],
                currency=course["currency"],
            ),
            source="courses",
        )
        rows.append(
            {
                "event_id": envelope.id,
                "type": envelope.type,
                "subject": envelope.subject,
                "payload": Jsonb(envelope.model_dump(mode="json")),
            }
        )
    await _insert(session, outbox, rows, key="event_id")
    if rows:
        await session.execute(select(func.pg_notify(outbox_channel(outbox.schema), "")))


async def _reset(session: AsyncSession) -> None:
    await session.execute(
        text(
            "TRUNCATE courses.categories, courses.courses, courses.sections, courses.lessons, "
            "courses.enrollments, courses.payment_grants, courses.lesson_progress, "
            "courses.reviews"
        )
    )
    await session.execute(users.delete().where(users.c.email.like(f"%@{SEED_EMAIL_DOMAIN}")))


async def seed_catalog(session: AsyncSession, plan: SeedPlan, out: Out = print) -> dict[str, int]:
    """Load the demo catalog in the caller's transaction; returns the new rows per table."""
    progress = _Progress(out)
    now = datetime.now(UTC).replace(microsecond=0)
    new: dict[str, int] = {}
    if plan.reset:
        t = time.monotonic()
        await _reset(session)
        out(f"  reset         done ({time.monotonic() - t:.2f}s)")

    t = time.monotonic()
    category_rows = [
        {"id": seed_id("category", name), "name": name, "slug": slugify(name), "description": ""}
        for name in CATEGORIES
    ]
    new["categories"] = len(await _insert(session, categories, category_rows))
    progress.step("categories", new["categories"], len(category_rows), t)

    t = time.monotonic()
    instructor_rows = _people("instructor", max(5, plan.courses // 8), "instructor", now)
    student_rows = _people("student", max(50, plan.enrollment_target // 8), "student", now)
    new["users"] = len(await _insert(session, users, instructor_rows + student_rows))
    progress.step("users", new["users"], len(instructor_rows) + len(student_rows), t)

    t = time.monotonic()
    course_rows, section_rows, lesson_rows = _course_rows(
        plan, [r["id"] for r in instructor_rows], now
    )
    # A course whose slug a real course already holds is skipped with its contents.
    created = set(await _insert(session, courses, course_rows))
    present = set(
        (
            await session.execute(
                select(courses.c.id).where(courses.c.id.in_([c["id"] for c in course_rows]))
            )
        ).scalars()
    )
    new["courses"] = len(created)
    progress.step("courses", len(created), len(course_rows), t)

    t = time.monotonic()
    section_rows = [s for s in section_rows if s["course_id"] in present]
    new["sections"] = len(await _insert(session, sections, section_rows))
    progress.step("sections", new["sections"], len(section_rows), t)

    t = time.monotonic()
    lesson_rows = [row for row in lesson_rows if row["course_id"] in present]
    new["lessons"] = len(await _insert(session, lessons, lesson_rows))
    progress.step("lessons", new["lessons"], len(lesson_rows), t)

    t = time.monotonic()
    published = [c for c in course_rows if c["is_published"] and c["id"] in present]
    enrollment_rows, grant_rows = _enrollment_rows(plan, published, [r["id"] for r in student_rows])
    new["enrollments"] = len(await _insert(session, enrollments, enrollment_rows))
    await _insert(session, payment_grants, grant_rows, key="payment_id")
    progress.step("enrollments", new["enrollments"], len(enrollment_rows), t)

    t = time.monotonic()
    review_rows = _review_rows(plan, enrollment_rows)
    new["reviews"] = len(await _insert(session, reviews, review_rows))
    progress.step("reviews", new["reviews"], len(review_rows), t)

    t = time.monotonic()
    await _recompute_aggregates(session, present)
    await _announce(session, [c for c in published if c["id"] in created])
    out(f"  aggregates    recomputed for {len(present)} courses ({time.monotonic() - t:.2f}s)")
    return new


async def run_seed(settings: Settings, plan: SeedPlan, out: Out = print) -> dict[str, int]:
    """The ``seed`` command: load, commit, retire the cache."""
    from redis.asyncio import Redis

    from courses_service.cache import CourseCache

    if plan.reset and settings.env == "production":
        raise SystemExit("seed --reset is refused with ENV=production")
    started = time.monotonic()
    out(f"seeding {plan.courses} courses into {settings.database_url.rsplit('@', 1)[-1]}")
    engine = create_engine(settings.database_url, pool_size=1, application_name="courses-seed")
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            new = await seed_catalog(session, plan, out)
        # Fresh planner statistics: the catalog's index plans depend on them after a bulk load.
        async with sessions() as session, session.begin():
            for table in (users, categories, courses, sections, lessons, enrollments, reviews):
                await session.execute(text(f"ANALYZE {table.schema}.{table.name}"))
    finally:
        await engine.dispose()
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await CourseCache.from_settings(settings, redis).invalidate_everything()
    finally:
        await redis.aclose()
    out(
        f"done in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{k} +{v}" for k, v in new.items())
    )
    return new
