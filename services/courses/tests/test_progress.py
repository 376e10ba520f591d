"""Progress: completing lessons (enrolled students, idempotent), percent, completion once."""

from __future__ import annotations

import asyncio
import uuid


def lesson_ids(course: dict) -> list[str]:
    return [lesson["id"] for s in course["sections"] for lesson in s["lessons"]]


async def test_completing_every_lesson_completes_the_course_once(
    client, make_user, make_course, enroll, outbox_events
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher, lessons=3)
    await enroll(student, course)
    base = f"/api/v1/courses/{course['id']}"
    ids = lesson_ids(course)

    start = await client.get(f"{base}/progress", headers=student.headers)
    assert start.json() == {
        "course_id": course["id"],
        "completed_lesson_ids": [],
        "total_lessons": 3,
        "percent": 0,
        "completed_at": None,
    }
    first = await client.post(f"{base}/lessons/{ids[0]}/complete", headers=student.headers)
    assert first.status_code == 200
    assert first.json()["completed_lesson_ids"] == [ids[0]] and first.json()["percent"] == 33
    again = await client.post(f"{base}/lessons/{ids[0]}/complete", headers=student.headers)
    assert again.json()["percent"] == 33, "completing twice changes nothing"
    await client.post(f"{base}/lessons/{ids[1]}/complete", headers=student.headers)
    last = await client.post(f"{base}/lessons/{ids[2]}/complete", headers=student.headers)
    body = last.json()
    assert body["percent"] == 100 and body["completed_at"] is not None
    assert set(body["completed_lesson_ids"]) == set(ids)
    await client.post(f"{base}/lessons/{ids[2]}/complete", headers=student.headers)

    assert len(await outbox_events("lesson.completed.v1")) == 3
    completed = await outbox_events("course.completed.v1")
    assert len(completed) == 1
    assert completed[0]["data"] == {
        "user_id": str(student.id),
        "course_id": course["id"],
        "lesson_id": ids[2],
    }
    progress = (await client.get(f"{base}/progress", headers=student.headers)).json()
    assert progress["percent"] == 100 and progress["completed_at"] == body["completed_at"]


async def test_finishing_the_last_two_lessons_at_once_completes_the_course_once(
    client, make_user, make_course, enroll, outbox_events
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher, lessons=4)
    await enroll(student, course)
    base = f"/api/v1/courses/{course['id']}"
    answers = await asyncio.gather(
        *(
            client.post(f"{base}/lessons/{lesson}/complete", headers=student.headers)
            for lesson in lesson_ids(course)
        )
    )
    assert all(a.status_code == 200 for a in answers)
    assert len(await outbox_events("course.completed.v1")) == 1


async def test_only_enrolled_students_complete_lessons(client, make_user, make_course):
    teacher = await make_user("instructor")
    stranger = await make_user("student")
    course = await make_course(teacher, lessons=1)
    draft = await make_course(teacher, title="Draft", lessons=1, publish=False)
    lesson = lesson_ids(course)[0]
    base = f"/api/v1/courses/{course['id']}"
    assert (await client.post(f"{base}/lessons/{lesson}/complete")).status_code == 401
    r = await client.post(f"{base}/lessons/{lesson}/complete", headers=stranger.headers)
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/courses/{draft['id']}/lessons/{lesson_ids(draft)[0]}/complete",
        headers=stranger.headers,
    )
    assert r.status_code == 404


async def test_unknown_or_foreign_lessons_are_404(client, make_user, make_course, enroll):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher, lessons=1)
    other = await make_course(teacher, title="Other", lessons=1)
    await enroll(student, course)
    base = f"/api/v1/courses/{course['id']}"
    for lesson in (uuid.uuid4(), lesson_ids(other)[0]):
        r = await client.post(f"{base}/lessons/{lesson}/complete", headers=student.headers)
        assert r.status_code == 404
    r = await client.post(f"{base}/lessons/not-a-uuid/complete", headers=student.headers)
    assert r.status_code == 422


async def test_progress_counts_only_lessons_that_still_exist(
    client, make_user, make_course, enroll
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher, lessons=2)
    await enroll(student, course)
    base = f"/api/v1/courses/{course['id']}"
    first, second = lesson_ids(course)
    await client.post(f"{base}/lessons/{first}/complete", headers=student.headers)
    section = course["sections"][0]["id"]
    await client.delete(f"{base}/sections/{section}/lessons/{first}", headers=teacher.headers)
    progress = (await client.get(f"{base}/progress", headers=student.headers)).json()
    assert (progress["completed_lesson_ids"], progress["total_lessons"], progress["percent"]) == (
        [],
        1,
        0,
    )
    assert second
