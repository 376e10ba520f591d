"""The users read model and the consumers' tolerance of odd deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courses_service.models import users
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import UserRegistered, UserUpdated


def user_event(cls, user_id, name, *, at=None) -> Envelope:
    envelope = Envelope.new(
        cls(user_id=user_id, email="u@example.com", full_name=name, roles=["instructor"]),
        source="auth",
    )
    return envelope.model_copy(update={"time": at}) if at else envelope


async def names(sessions, user_id):
    async with sessions() as session:
        return (
            await session.execute(select(users.c.full_name).where(users.c.id == user_id))
        ).scalar_one_or_none()


async def test_users_read_model_follows_registration_and_updates(consumer, sessions):
    users_consumer = consumer("auth")
    user_id = uuid.uuid4()
    registered = user_event(UserRegistered, user_id, "Ada")
    assert await users_consumer.apply(registered)
    assert not await users_consumer.apply(registered), "a redelivery is a no-op"
    assert await users_consumer.apply(user_event(UserUpdated, user_id, "Ada L."))
    assert await names(sessions, user_id) == "Ada L."


async def test_an_older_update_never_overwrites_a_newer_one(consumer, sessions):
    users_consumer = consumer("auth")
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    await users_consumer.apply(user_event(UserUpdated, user_id, "Newest", at=now))
    await users_consumer.apply(user_event(UserRegistered, user_id, "Oldest", at=now - timedelta(1)))
    assert await names(sessions, user_id) == "Newest"


async def test_instructor_names_come_from_the_read_model(client, consumer, make_user, make_course):
    teacher = await make_user("instructor", full_name="Before")
    course = await make_course(teacher)
    await consumer("auth").apply(user_event(UserUpdated, teacher.id, "After"))
    detail = (await client.get(f"/api/v1/courses/{course['id']}")).json()
    assert detail["instructor"]["full_name"] == "After"


async def test_a_course_of_an_unknown_instructor_shows_no_name(client, mint):
    teacher_id = uuid.uuid4()
    headers = {"Authorization": f"Bearer {mint.token(teacher_id, ('instructor',))}"}
    course = (await client.post("/api/v1/courses", json={"title": "T"}, headers=headers)).json()
    assert course["instructor"] == {"id": str(teacher_id), "full_name": None}


async def test_events_the_consumer_does_not_handle_are_ignored(consumer, sessions):
    from unpuzzle_common.events.schemas import SubscriptionActivated

    other = Envelope.new(
        SubscriptionActivated(user_id=uuid.uuid4(), plan="pro", ai_daily_limit=100),
        source="payments",
    )
    assert await consumer("payments").apply(other)
