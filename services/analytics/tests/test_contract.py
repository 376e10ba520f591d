"""Every event type of the platform is consumed, stored as a fact and (where it measures
something) rolled up; malformed data is refused, unknown types are kept."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from analytics_service.events import SUBSCRIPTIONS
from analytics_service.facts import HANDLED_TYPES, OMITTED_DATA, fact_from
from analytics_service.models import facts
from analytics_service.rollups import ROLLUPS
from unpuzzle_common.events import schemas as s
from unpuzzle_common.events.consumer import PoisonEvent
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import PRODUCED_DOMAINS

USER, COURSE, PAYMENT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

#: One valid ``data`` per event type, as its producer sends it.
SAMPLES: dict[str, s.EventData] = {
    m.event_type: m
    for m in (
        s.UserRegistered(user_id=USER, email="a@example.com", full_name="A", roles=["student"]),
        s.UserUpdated(user_id=USER, email="a@example.com", full_name="A B", roles=["student"]),
        s.CoursePublished(
            course_id=COURSE,
            instructor_id=USER,
            price=1999,
            currency="usd",
            title="T",
            lessons=[s.PublishedLesson(lesson_id=uuid.uuid4(), title="L", content="secret")],
        ),
        s.CourseUnpublished(course_id=COURSE, instructor_id=USER, price=1999, currency="usd"),
        s.PaymentSucceeded(
            payment_id=PAYMENT, user_id=USER, course_id=COURSE, amount=1999, currency="usd"
        ),
        s.PaymentRefunded(payment_id=PAYMENT, user_id=USER, course_id=COURSE, amount=1999),
        s.EnrollmentCreated(
            enrollment_id=uuid.uuid4(), user_id=USER, course_id=COURSE, source=str(PAYMENT)
        ),
        s.EnrollmentRevoked(
            enrollment_id=uuid.uuid4(), user_id=USER, course_id=COURSE, source="free"
        ),
        s.LessonCompleted(user_id=USER, course_id=COURSE, lesson_id=uuid.uuid4()),
        s.CourseCompleted(user_id=USER, course_id=COURSE, lesson_id=uuid.uuid4()),
        s.ReviewCreated(course_id=COURSE, user_id=USER, rating=4),
        s.MediaUploaded(media_id=uuid.uuid4(), owner_id=USER, content_type="video/mp4"),
        s.MediaProcessed(
            media_id=uuid.uuid4(),
            owner_id=USER,
            content_type="video/mp4",
            duration=61.5,
            transcript="a long transcript",
        ),
        s.SubscriptionActivated(user_id=USER, plan="pro", ai_daily_limit=500),
        s.SubscriptionCanceled(user_id=USER, plan="pro", ai_daily_limit=20),
        s.AiUsageRecorded(user_id=USER, tokens=321, cost_micro_usd=6420, agent="hint"),
    )
}


def test_every_event_type_has_a_sample_and_an_extractor():
    assert set(SAMPLES) == set(s.EVENT_TYPES) == HANDLED_TYPES


@pytest.mark.parametrize("event_type", sorted(s.EVENT_TYPES))
def test_every_event_type_travels_on_a_stream_analytics_consumes(event_type, settings):
    prefix = settings.events_prefix
    domain = event_type.split(".")[0]
    [producer] = [p for p, domains in PRODUCED_DOMAINS.items() if domain in domains]
    [subscription] = [sub for sub in SUBSCRIPTIONS if sub.producer == producer]
    wildcard = subscription.filter_subject(prefix).removesuffix(">")
    assert f"{prefix}.{event_type}".startswith(wildcard)


async def test_every_event_type_is_stored_as_a_fact(deliver, make_envelope, sessions):
    envelopes = {t: make_envelope(data, "2026-03-01T12:00:00+00:00") for t, data in SAMPLES.items()}

    applied = await deliver(list(envelopes.values()))

    assert all(applied)
    async with sessions() as session:
        stored = {row.type: row for row in await session.execute(select(facts))}
    assert set(stored) == set(s.EVENT_TYPES)
    for row in stored.values():
        assert not OMITTED_DATA & row.data.keys()  # no emails, names, transcripts, lessons
    assert stored["payment.refunded.v1"].currency == "usd"  # the payment's
    assert (
        stored["ai.usage.recorded.v1"].tokens,
        stored["ai.usage.recorded.v1"].cost_micro_usd,
    ) == (
        321,
        6420,
    )
    assert stored["review.created.v1"].rating == 4
    assert stored["enrollment.created.v1"].payment_id == PAYMENT


def test_every_measured_event_type_is_a_platform_event():
    measured = {m.event_type for rollup in ROLLUPS for m in rollup.measures}
    assert measured <= set(s.EVENT_TYPES)


def test_data_that_does_not_fit_its_schema_is_a_poison_event(make_envelope):
    valid = make_envelope(SAMPLES["payment.succeeded.v1"], "2026-03-01T12:00:00+00:00")
    floaty = valid.model_copy(update={"data": {**valid.data, "amount": 19.99}})

    with pytest.raises(PoisonEvent):
        fact_from(floaty)


async def test_an_event_type_not_known_yet_is_kept_as_a_bare_fact(deliver, sessions):
    newer = Envelope.model_validate(
        {
            "id": uuid.uuid4(),
            "type": "course.archived.v1",
            "source": "courses",
            "time": "2026-03-01T12:00:00Z",
            "subject": str(COURSE),
            "data": {"course_id": str(COURSE)},
        }
    )

    assert await deliver([newer]) == [True]
    async with sessions() as session:
        row = (await session.execute(select(facts))).one()
    assert (row.type, row.course_id, row.data) == (
        "course.archived.v1",
        None,
        {"course_id": str(COURSE)},
    )
