"""Reviews: enrolled students only, one each, sanitised, aggregates exact under concurrency."""

from __future__ import annotations

import asyncio

import pytest


async def test_enrolled_student_reviews_once(client, make_user, make_course, enroll, outbox_events):
    teacher = await make_user("instructor")
    student = await make_user("student", full_name="Kim Student")
    course = await make_course(teacher)
    await enroll(student, course)
    url = f"/api/v1/courses/{course['id']}/reviews"
    response = await client.post(
        url,
        json={"rating": 4, "comment": '<b>Great</b> <script>x()</script><a href="http://x">l</a>'},
        headers=student.headers,
    )
    assert response.status_code == 201, response.text
    review = response.json()
    assert review["rating"] == 4 and review["comment"] == "<b>Great</b> l"
    assert review["user"] == {"id": str(student.id), "full_name": "Kim Student"}
    second = await client.post(url, json={"rating": 1}, headers=student.headers)
    assert second.status_code == 409
    listed = (await client.get(url)).json()
    assert [r["id"] for r in listed["items"]] == [review["id"]]
    detail = (await client.get(f"/api/v1/courses/{course['id']}")).json()
    assert (detail["rating_avg"], detail["rating_count"]) == (4.0, 1)
    [event] = await outbox_events("review.created.v1")
    assert event["data"] == {
        "course_id": course["id"],
        "user_id": str(student.id),
        "rating": 4,
        "review_id": review["id"],
    }


async def test_only_enrolled_students_review(client, make_user, make_course):
    teacher = await make_user("instructor")
    stranger = await make_user("student")
    course = await make_course(teacher)
    draft = await make_course(teacher, title="Draft", publish=False)
    url = f"/api/v1/courses/{course['id']}/reviews"
    assert (await client.post(url, json={"rating": 5})).status_code == 401
    assert (await client.post(url, json={"rating": 5}, headers=stranger.headers)).status_code == 403
    assert (await client.post(url, json={"rating": 5}, headers=teacher.headers)).status_code == 403
    r = await client.post(
        f"/api/v1/courses/{draft['id']}/reviews", json={"rating": 5}, headers=stranger.headers
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "rating"),
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 5, "comment": "x" * 5001}, "comment"),
    ],
)
async def test_bad_reviews_are_422(client, make_user, make_course, enroll, body, field):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher)
    await enroll(student, course)
    r = await client.post(
        f"/api/v1/courses/{course['id']}/reviews", json=body, headers=student.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field


async def test_concurrent_reviews_keep_exact_aggregates(client, make_user, make_course, enroll):
    teacher = await make_user("instructor")
    course = await make_course(teacher)
    students = [await make_user("student") for _ in range(16)]
    for student in students:
        await enroll(student, course)
    ratings = [(n % 5) + 1 for n in range(len(students))]
    url = f"/api/v1/courses/{course['id']}/reviews"
    answers = await asyncio.gather(
        *(
            client.post(url, json={"rating": rating}, headers=student.headers)
            for student, rating in zip(students, ratings, strict=True)
        )
    )
    assert [a.status_code for a in answers] == [201] * len(students)
    detail = (await client.get(f"/api/v1/courses/{course['id']}")).json()
    assert detail["rating_count"] == len(ratings)
    assert detail["rating_avg"] == round(sum(ratings) / len(ratings), 2)


async def test_reviews_are_paginated_newest_first(client, make_user, make_course, enroll):
    teacher = await make_user("instructor")
    course = await make_course(teacher)
    url = f"/api/v1/courses/{course['id']}/reviews"
    ids = []
    for _ in range(3):
        student = await make_user("student")
        await enroll(student, course)
        ids.append(
            (await client.post(url, json={"rating": 5}, headers=student.headers)).json()["id"]
        )
    page = (await client.get(url, params={"limit": 2})).json()
    rest = (await client.get(url, params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [r["id"] for r in page["items"] + rest["items"]] == ids[::-1]
    assert (await client.get(url, params={"cursor": "%%%"})).status_code == 422
