"""Creating, changing, publishing and deleting courses: happy paths, bad input, who may."""

from __future__ import annotations

import uuid

import pytest

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"] and body["title"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def test_instructor_creates_a_draft_with_a_slug_from_its_title(client, make_user):
    teacher = await make_user("instructor", full_name="Grace Hopper")
    response = await client.post(
        "/api/v1/courses",
        json={
            "title": "  Intro to Pythön: Part 1!  ",
            "description": '<p onclick="x()">Learn <b>fast</b><script>alert(1)</script></p>',
            "price": 1999,
            "currency": "EUR",
        },
        headers=teacher.headers,
    )
    assert response.status_code == 201, response.text
    course = response.json()
    assert response.headers["location"] == f"/api/v1/courses/{course['id']}"
    assert course["slug"] == "intro-to-python-part-1"
    assert course["title"] == "Intro to Pythön: Part 1!"
    assert course["description"] == "<p>Learn <b>fast</b></p>"
    assert course["price"] == 1999 and course["currency"] == "eur"
    assert course["is_published"] is False and course["published_at"] is None
    assert course["instructor"] == {"id": str(teacher.id), "full_name": "Grace Hopper"}
    assert course["sections"] == [] and course["lesson_count"] == 0
    assert course["can_edit"] is True


async def test_same_title_gets_a_distinct_slug(client, make_user):
    teacher = await make_user("instructor")
    slugs = []
    for _ in range(3):
        response = await client.post(
            "/api/v1/courses", json={"title": "Rust Basics"}, headers=teacher.headers
        )
        slugs.append(response.json()["slug"])
    assert slugs == ["rust-basics", "rust-basics-2", "rust-basics-3"]


async def test_admin_creates_courses_too_and_a_category_can_be_set(client, make_user):
    admin = await make_user("admin")
    category = await client.post(
        "/api/v1/categories", json={"name": "Programming"}, headers=admin.headers
    )
    response = await client.post(
        "/api/v1/courses",
        json={"title": "Go", "category_id": category.json()["id"]},
        headers=admin.headers,
    )
    assert response.status_code == 201
    assert response.json()["category"]["slug"] == "programming"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "<script>alert(1)</script>"}, "title"),
        ({"title": "T", "price": -1}, "price"),
        ({"title": "T", "price": 19.99}, "price"),
        ({"title": "T", "price": "1999"}, "price"),
        ({"title": "T", "currency": "dollars"}, "currency"),
        ({"title": "T", "currency": "u$d"}, "currency"),
        ({"title": "T", "description": "x" * 20_001}, "description"),
        ({"title": "T", "category_id": "not-a-uuid"}, "category_id"),
        ({"title": "T", "unknown": 1}, "unknown"),
    ],
)
async def test_bad_course_input_is_a_422_naming_the_field(client, make_user, body, field):
    teacher = await make_user("instructor")
    response = await client.post("/api/v1/courses", json=body, headers=teacher.headers)
    assert_problem(response, 422, field)


async def test_unknown_category_is_a_422(client, make_user):
    teacher = await make_user("instructor")
    response = await client.post(
        "/api/v1/courses",
        json={"title": "T", "category_id": str(uuid.uuid4())},
        headers=teacher.headers,
    )
    assert_problem(response, 422, "category_id")


async def test_only_instructors_and_admins_create_courses(client, make_user):
    student = await make_user("student")
    assert_problem(await client.post("/api/v1/courses", json={"title": "T"}), 401)
    assert_problem(
        await client.post("/api/v1/courses", json={"title": "T"}, headers=student.headers), 403
    )


async def test_expired_or_foreign_tokens_are_refused(client, make_user, mint):
    teacher = await make_user("instructor")
    expired = mint.token(teacher.id, ("instructor",), exp=1, iat=0)
    response = await client.get("/api/v1/courses", headers={"Authorization": f"Bearer {expired}"})
    assert_problem(response, 401)
    response = await client.get("/api/v1/courses", headers={"Authorization": "Bearer x.y.z"})
    assert_problem(response, 401)


async def test_owner_edits_a_course_and_absent_fields_stay(client, make_user, make_course):
    teacher = await make_user("instructor")
    course = await make_course(teacher, title="Old", price=500, publish=False)
    response = await client.patch(
        f"/api/v1/courses/{course['id']}",
        json={"title": "New title", "description": "<i>d</i>"},
        headers=teacher.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["description"], body["price"]) == ("New title", "<i>d</i>", 500)
    assert body["slug"] == course["slug"], "slugs are stable: links keep working"


async def test_category_can_be_removed_with_null(client, make_user, make_course):
    admin = await make_user("admin")
    category = await client.post("/api/v1/categories", json={"name": "Art"}, headers=admin.headers)
    course = await make_course(admin, category_id=category.json()["id"])
    assert course["category"]["name"] == "Art"
    response = await client.patch(
        f"/api/v1/courses/{course['id']}", json={"category_id": None}, headers=admin.headers
    )
    assert response.json()["category"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": -5}, "price"),
        ({"title": ""}, "title"),
        ({"category_id": str(uuid.uuid4())}, "category_id"),
    ],
)
async def test_bad_edits_are_422(client, make_user, make_course, body, field):
    teacher = await make_user("instructor")
    course = await make_course(teacher)
    response = await client.patch(
        f"/api/v1/courses/{course['id']}", json=body, headers=teacher.headers
    )
    assert_problem(response, 422, field)


async def test_who_may_change_a_published_course(client, make_user, make_course):
    owner = await make_user("instructor")
    other = await make_user("instructor")
    student = await make_user("student")
    admin = await make_user("admin")
    course = await make_course(owner)
    url = f"/api/v1/courses/{course['id']}"
    assert_problem(await client.patch(url, json={"title": "x"}), 401)
    assert_problem(await client.patch(url, json={"title": "x"}, headers=student.headers), 403)
    assert_problem(await client.patch(url, json={"title": "x"}, headers=other.headers), 403)
    assert (await client.patch(url, json={"title": "o"}, headers=owner.headers)).status_code == 200
    assert (await client.patch(url, json={"title": "a"}, headers=admin.headers)).status_code == 200
    for action in ("publish", "unpublish"):
        assert_problem(await client.post(f"{url}/{action}", headers=student.headers), 403)
        assert_problem(await client.post(f"{url}/{action}", headers=other.headers), 403)
    assert_problem(await client.delete(url, headers=other.headers), 403)
    assert_problem(await client.delete(url), 401)


async def test_others_changing_a_draft_get_404(client, make_user, make_course):
    owner = await make_user("instructor")
    other = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(owner, publish=False)
    url = f"/api/v1/courses/{course['id']}"
    for caller in (other, student):
        assert_problem(await client.patch(url, json={"title": "x"}, headers=caller.headers), 404)
        assert_problem(await client.post(f"{url}/publish", headers=caller.headers), 404)
        assert_problem(await client.delete(url, headers=caller.headers), 404)


async def test_publish_needs_a_lesson_and_emits_course_published(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    course = await make_course(teacher, lessons=0, publish=False, price=2500)
    url = f"/api/v1/courses/{course['id']}"
    body = assert_problem(await client.post(f"{url}/publish", headers=teacher.headers), 409)
    assert "lesson" in body["detail"]
    section = await client.post(f"{url}/sections", json={"title": "S"}, headers=teacher.headers)
    await client.post(
        f"{url}/sections/{section.json()['id']}/lessons",
        json={"title": "L"},
        headers=teacher.headers,
    )
    response = await client.post(f"{url}/publish", headers=teacher.headers)
    assert response.status_code == 200
    assert response.json()["is_published"] is True and response.json()["published_at"]
    again = await client.post(f"{url}/publish", headers=teacher.headers)
    assert again.status_code == 200
    events = await outbox_events("course.published.v1")
    assert len(events) == 1, "publishing twice announces once"
    data = events[0]["data"]
    assert {k: data[k] for k in ("course_id", "instructor_id", "price", "currency", "title")} == {
        "course_id": course["id"],
        "instructor_id": str(teacher.id),
        "price": 2500,
        "currency": "usd",
        "title": course["title"],
    }
    assert [lesson["title"] for lesson in data["lessons"]] == ["L"]
    assert events[0]["source"] == "courses" and events[0]["subject"] == course["id"]


async def test_price_change_of_a_published_course_is_announced(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    course = await make_course(teacher, price=1000)
    await client.patch(
        f"/api/v1/courses/{course['id']}", json={"price": 1500}, headers=teacher.headers
    )
    prices = [e["data"]["price"] for e in await outbox_events("course.published.v1")]
    assert prices == [1000, 1500]


async def test_unpublish_hides_the_course_and_is_announced(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    course = await make_course(teacher)
    response = await client.post(
        f"/api/v1/courses/{course['id']}/unpublish", headers=teacher.headers
    )
    assert response.status_code == 200 and response.json()["is_published"] is False
    assert (await client.get(f"/api/v1/courses/{course['id']}")).status_code == 404
    assert len(await outbox_events("course.unpublished.v1")) == 1


async def test_delete_is_soft_and_hides_the_course_from_everyone(
    client, make_user, make_course, outbox_events, sessions
):
    from sqlalchemy import select

    from courses_service.models import courses

    teacher = await make_user("instructor")
    admin = await make_user("admin")
    course = await make_course(teacher)
    response = await client.delete(f"/api/v1/courses/{course['id']}", headers=teacher.headers)
    assert response.status_code == 204
    for headers in ({}, teacher.headers, admin.headers):
        assert (
            await client.get(f"/api/v1/courses/{course['id']}", headers=headers)
        ).status_code == 404
        listed = await client.get("/api/v1/courses", headers=headers)
        assert listed.json()["items"] == []
    async with sessions() as session:
        row = (await session.execute(select(courses).where(courses.c.id == course["id"]))).one()
    assert row.deleted_at is not None
    assert len(await outbox_events("course.unpublished.v1")) == 1
    again = await client.delete(f"/api/v1/courses/{course['id']}", headers=teacher.headers)
    assert_problem(again, 404)


async def test_deleting_a_course_revokes_its_enrollments(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course = await make_course(teacher)
    enrolled = await client.post(f"/api/v1/courses/{course['id']}/enroll", headers=student.headers)
    assert enrolled.status_code == 201
    response = await client.delete(f"/api/v1/courses/{course['id']}", headers=teacher.headers)
    assert response.status_code == 204
    revoked = await outbox_events("enrollment.revoked.v1")
    assert [(e["data"]["user_id"], e["data"]["reason"]) for e in revoked] == [
        (str(student.id), "course_deleted")
    ]
    mine = await client.get("/api/v1/enrollments", headers=student.headers)
    assert [e for e in mine.json()["items"] if e["status"] == "active"] == []


async def test_unknown_course_is_404(client, make_user):
    teacher = await make_user("instructor")
    for url in (f"/api/v1/courses/{uuid.uuid4()}", "/api/v1/courses/no-such-slug"):
        assert_problem(await client.get(url), 404)
        assert_problem(await client.patch(url, json={"title": "x"}, headers=teacher.headers), 404)
    assert_problem(await client.get("/api/v1/courses/" + "x" * 121), 422)


async def test_oversized_body_is_413(client, make_user):
    teacher = await make_user("instructor")
    response = await client.post(
        "/api/v1/courses",
        content=b'{"title": "' + b"x" * 1_100_000 + b'"}',
        headers={**teacher.headers, "content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_idempotency_key_replays_the_first_create(client, make_user):
    teacher = await make_user("instructor")
    headers = {**teacher.headers, "Idempotency-Key": "create-once"}
    first = await client.post("/api/v1/courses", json={"title": "Once"}, headers=headers)
    second = await client.post("/api/v1/courses", json={"title": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
