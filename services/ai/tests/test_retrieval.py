"""Full-text retrieval picks the right passages of the right course."""

from __future__ import annotations

import uuid

from ai_service.retrieval import ground, in_course_order, search
from unpuzzle_common.events.schemas import CoursePublished, PublishedLesson


async def test_question_finds_the_lesson_that_answers_it(ctx, course):
    async with ctx.sessions() as session:
        found = await search(
            session, course_id=course.course_id, query="Where is chlorophyll found?", limit=3
        )
    assert found[0].lesson_id == course.photosynthesis
    assert "chloroplasts" in found[0].content
    assert found[0].lesson_title == "Photosynthesis"


async def test_question_on_the_video_cites_the_transcript_with_its_times(ctx, course):
    async with ctx.sessions() as session:
        found = await search(
            session,
            course_id=course.course_id,
            query="How do root hair cells absorb water from the soil?",
            limit=3,
        )
    best = found[0]
    assert best.source == "transcript"
    assert best.media_id == course.transport_media
    assert best.lesson_id == course.transport  # linked through the lesson's media
    assert best.start_seconds is not None and best.start_seconds <= 65.0
    citation = best.citation()
    assert citation["lesson_id"] == str(course.transport)
    assert citation["media_id"] == str(course.transport_media)
    assert "osmosis" in citation["snippet"]


async def test_other_courses_passages_are_never_returned(ctx, course, apply_event):
    other = uuid.uuid4()
    await apply_event(
        CoursePublished(
            course_id=other,
            instructor_id=uuid.uuid4(),
            price=0,
            currency="usd",
            lessons=[
                PublishedLesson(
                    lesson_id=uuid.uuid4(),
                    title="Secret",
                    content="Chlorophyll chloroplasts chlorophyll chloroplasts.",
                )
            ],
        )
    )
    async with ctx.sessions() as session:
        found = await search(session, course_id=course.course_id, query="chlorophyll", limit=10)
    assert found and all(p.lesson_id != other for p in found)
    assert all(p.lesson_title != "Secret" for p in found)


async def test_the_lesson_being_studied_ranks_first_on_a_shared_word(ctx, course):
    async with ctx.sessions() as session:
        found = await search(
            session,
            course_id=course.course_id,
            query="glucose",
            limit=5,
            lesson_id=course.respiration,
        )
    assert found[0].lesson_id == course.respiration


async def test_a_question_the_course_does_not_cover_finds_nothing(ctx, course):
    async with ctx.sessions() as session:
        assert (
            await ground(
                session, course_id=course.course_id, query="quantum chromodynamics", limit=3
            )
            == []
        )
        # ... unless it is asked on a lesson: then the lesson's own text grounds it.
        on_lesson = await ground(
            session,
            course_id=course.course_id,
            query="quantum chromodynamics",
            limit=3,
            lesson_id=course.respiration,
        )
    assert on_lesson and {p.lesson_id for p in on_lesson} == {course.respiration}


async def test_course_passages_in_reading_order(ctx, course):
    async with ctx.sessions() as session:
        ordered = await in_course_order(session, course_id=course.course_id, limit=20)
    lessons = [p.lesson_id for p in ordered]
    assert lessons.index(course.photosynthesis) < lessons.index(course.respiration)
    assert lessons.index(course.respiration) < lessons.index(course.transport)
