"""Visibility, rule by rule: published, own, enrolled, admin — everyone else gets 404."""

from __future__ import annotations

import uuid

import pytest

from courses_service.enrollments import grant_paid_enrollment
from unpuzzle_common.db import transaction
from unpuzzle_common.events.schemas import PaymentSucceeded


@pytest.fixture
async def world(make_user, make_course, sessions):
    """A published course and a draft of one instructor; a student enrolled in the draft."""
    owner = await make_user("instructor")
    people = {
        "owner": owner,
        "other_instructor": await make_user("instructor"),
        "student": await make_user("student"),
        "enrolled": await make_user("student"),
        "admin": await make_user("admin"),
    }
    published = await make_course(owner, title="Published One", lessons=2)
    draft = await make_course(owner, title="Draft One", lessons=2, publish=False, price=900)
    # Enrolled in a course that is not published (bought earlier, then unpublished).
    async with transaction(sessions) as session:
        await grant_paid_enrollment(
            session,
            PaymentSucceeded(
                payment_id=uuid.uuid4(),
                user_id=people["enrolled"].id,
                course_id=uuid.UUID(draft["id"]),
                amount=900,
                currency="usd",
            ),
        )
    return people, published, draft


SEES_DRAFT = {
    "anonymous": False,
    "student": False,
    "other_instructor": False,
    "owner": True,
    "enrolled": True,
    "admin": True,
}


def headers_of(people, who):
    return people[who].headers if who in people else {}


async def test_draft_detail_is_visible_exactly_to_owner_enrolled_and_admin(client, world):
    people, published, draft = world
    for who, sees in SEES_DRAFT.items():
        headers = headers_of(people, who)
        for ref in (draft["id"], draft["slug"]):
            response = await client.get(f"/api/v1/courses/{ref}", headers=headers)
            assert response.status_code == (200 if sees else 404), (who, response.text)
        response = await client.get(f"/api/v1/courses/{published['id']}", headers=headers)
        assert response.status_code == 200, who


async def test_catalog_lists_drafts_exactly_to_owner_enrolled_and_admin(client, world):
    people, published, draft = world
    for who, sees in SEES_DRAFT.items():
        response = await client.get("/api/v1/courses", headers=headers_of(people, who))
        ids = {item["id"] for item in response.json()["items"]}
        assert published["id"] in ids, who
        assert (draft["id"] in ids) is sees, who


async def test_reviews_and_progress_of_a_draft_follow_the_same_rule(client, world):
    people, _, draft = world
    for who, sees in SEES_DRAFT.items():
        headers = headers_of(people, who)
        response = await client.get(f"/api/v1/courses/{draft['id']}/reviews", headers=headers)
        assert response.status_code == (200 if sees else 404), who
        if who in people:
            response = await client.get(f"/api/v1/courses/{draft['id']}/progress", headers=headers)
            assert response.status_code == (200 if sees else 404), who


async def test_lesson_contents_only_for_those_with_access(client, world):
    people, published, _ = world
    await client.post(
        f"/api/v1/courses/{published['id']}/enroll", headers=people["enrolled"].headers
    )
    full_access = {"anonymous": False, "student": False, "other_instructor": False}
    full_access |= {"owner": True, "enrolled": True, "admin": True}
    for who, full in full_access.items():
        body = (
            await client.get(f"/api/v1/courses/{published['id']}", headers=headers_of(people, who))
        ).json()
        lesson = body["sections"][0]["lessons"][0]
        assert lesson["title"] == "Lesson 1" and lesson["duration_seconds"] == 60
        assert (lesson["content"] == "<p>x</p>") is full, who
        assert body["is_enrolled"] is (who == "enrolled"), who
        assert body["can_edit"] is (who in ("owner", "admin")), who


async def test_revoked_enrollment_no_longer_shows_a_draft(client, world, sessions):
    from sqlalchemy import select

    from courses_service.enrollments import revoke_enrollment
    from courses_service.models import enrollments

    people, _, draft = world
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                select(enrollments).where(enrollments.c.user_id == people["enrolled"].id)
            )
        ).one()
        await revoke_enrollment(session, row, reason="test")
    response = await client.get(
        f"/api/v1/courses/{draft['id']}", headers=people["enrolled"].headers
    )
    assert response.status_code == 404
