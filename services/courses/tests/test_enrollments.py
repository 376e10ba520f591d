"""Enrolling: the free path, the 402 for paid courses, and the caller's enrollments."""

from __future__ import annotations

import uuid

from courses_service.models import enrollments


async def test_free_course_enrollment_is_201_then_200_with_the_same_enrollment(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher)
    url = f"/api/v1/courses/{course['id']}/enroll"
    first = await client.post(url, headers=student.headers)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["user_id"] == str(student.id) and body["course_id"] == course["id"]
    assert body["source"] == "free" and body["status"] == "active"
    assert body["course"] == {"id": course["id"], "slug": course["slug"], "title": course["title"]}
    second = await client.post(url, headers=student.headers)
    assert second.status_code == 200 and second.json()["id"] == body["id"]
    events = await outbox_events("enrollment.created.v1")
    assert len(events) == 1
    assert events[0]["data"] == {
        "enrollment_id": body["id"],
        "user_id": str(student.id),
        "course_id": course["id"],
        "source": "free",
    }
    detail = (await client.get(f"/api/v1/courses/{course['id']}")).json()
    assert detail["enrollment_count"] == 1


async def test_concurrent_enrollments_of_one_student_make_one(
    client, make_user, make_course, count_rows
):
    import asyncio

    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher)
    url = f"/api/v1/courses/{course['id']}/enroll"
    answers = await asyncio.gather(*(client.post(url, headers=student.headers) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_rows(enrollments) == 1
    assert (await client.get(f"/api/v1/courses/{course['id']}")).json()["enrollment_count"] == 1


async def test_paid_course_answers_402_pointing_at_payments(client, make_user, make_course):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher, price=4900)
    response = await client.post(f"/api/v1/courses/{course['id']}/enroll", headers=student.headers)
    assert response.status_code == 402
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["payment"]["href"] == "/api/v1/payments/intents"
    assert body["payment"]["body"] == {"course_id": course["id"]}
    assert (body["price"], body["currency"]) == (4900, "usd")


async def test_enroll_needs_a_token_and_a_visible_published_course(client, make_user, make_course):
    teacher = await make_user("instructor")
    student = await make_user("student")
    draft = await make_course(teacher, publish=False)
    assert (await client.post(f"/api/v1/courses/{draft['id']}/enroll")).status_code == 401
    r = await client.post(f"/api/v1/courses/{draft['id']}/enroll", headers=student.headers)
    assert r.status_code == 404
    r = await client.post(f"/api/v1/courses/{draft['id']}/enroll", headers=teacher.headers)
    assert r.status_code == 409, "the owner sees the draft, but nobody enrolls before publishing"
    r = await client.post(f"/api/v1/courses/{uuid.uuid4()}/enroll", headers=student.headers)
    assert r.status_code == 404


async def test_my_enrollments_are_paginated_newest_first(client, make_user, make_course, enroll):
    teacher = await make_user("instructor")
    student = await make_user("student")
    other_student = await make_user("student")
    made = [await make_course(teacher, title=f"Course {n}") for n in range(3)]
    for course in made:
        await enroll(student, course)
    await enroll(other_student, made[0])
    first = await client.get("/api/v1/enrollments", params={"limit": 2}, headers=student.headers)
    assert first.status_code == 200
    page = first.json()
    assert [e["course"]["title"] for e in page["items"]] == ["Course 2", "Course 1"]
    rest = await client.get(
        "/api/v1/enrollments",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=student.headers,
    )
    assert [e["course"]["title"] for e in rest.json()["items"]] == ["Course 0"]
    assert rest.json()["next_cursor"] is None
    assert (await client.get("/api/v1/enrollments")).status_code == 401
    bad = await client.get(
        "/api/v1/enrollments", params={"cursor": "eyJ4IjoxfQ"}, headers=student.headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
