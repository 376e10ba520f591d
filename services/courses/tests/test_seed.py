"""The demo catalog seed: realistic, idempotent, consistent aggregates, --reset."""

from __future__ import annotations

from sqlalchemy import func, select

from courses_service.models import courses, enrollments, lessons, outbox, reviews
from courses_service.seed import SeedPlan, run_seed


async def test_seed_loads_a_consistent_catalog_and_is_idempotent(settings, app, client, sessions):
    lines: list[str] = []
    plan = SeedPlan(
        courses=24, sections_per_course=2, lessons_per_section=3, enrollments=120, reviews=40
    )
    first = await run_seed(settings, plan, out=lines.append)
    assert first["courses"] == 24 and first["lessons"] == 24 * 2 * 3
    assert first["enrollments"] == 120 and first["reviews"] == 40
    assert any("lessons" in line for line in lines) and lines[-1].startswith("done in")

    second = await run_seed(settings, plan, out=lines.append)
    assert set(second.values()) == {0}, "a second run adds nothing"

    async with sessions() as session:
        mismatched = (
            await session.execute(
                select(func.count())
                .select_from(courses)
                .where(
                    courses.c.enrollment_count
                    != select(func.count())
                    .select_from(enrollments)
                    .where(enrollments.c.course_id == courses.c.id)
                    .scalar_subquery(),
                )
            )
        ).scalar_one()
        assert mismatched == 0
        rating_count = (await session.execute(select(func.sum(courses.c.rating_count)))).scalar()
        review_count = (await session.execute(select(func.count()).select_from(reviews))).scalar()
        assert rating_count == review_count == 40
        lesson_total = (
            await session.execute(select(func.sum(courses.c.lesson_count)))
        ).scalar_one()
        assert (
            lesson_total
            == (await session.execute(select(func.count()).select_from(lessons))).scalar_one()
        )
        announced = (
            await session.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.type == "course.published.v1")
            )
        ).scalar_one()
        published = (
            await session.execute(
                select(func.count()).select_from(courses).where(courses.c.is_published)
            )
        ).scalar_one()
        assert announced == published > 0

    catalog = (await client.get("/api/v1/courses", params={"sort": "popular", "limit": 5})).json()
    assert len(catalog["items"]) == 5
    top = catalog["items"][0]
    assert top["instructor"]["full_name"] and top["category"]["name"] and top["lesson_count"] == 6

    reset = await run_seed(settings, SeedPlan(courses=5, reset=True), out=lines.append)
    assert reset["courses"] == 5
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(courses))).scalar_one() == 5
