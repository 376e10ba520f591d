"""Representative ``data`` of every event type, built the way its producer builds it.

Where a producer has a function that builds (or writes) the event with little around it,
that very function is called: with ``add_event`` replaced by a recorder and, where it
touches the database, a stand-in session whose every statement answers the given row.
Where the event is built in the middle of a longer transaction, the sample repeats the
producer's constructor call with values of the types the producer has at hand (the
``built_by`` line says where); ``test_producers_pass_only_fields_the_schema_has`` keeps
those calls honest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

from unpuzzle_common.events import (
    CourseCompleted,
    CoursePublished,
    Envelope,
    EventData,
    LessonCompleted,
    MediaProcessed,
    MediaUploaded,
    PaymentRefunded,
    PaymentSucceeded,
    ReviewCreated,
    SubscriptionActivated,
    SubscriptionCanceled,
    UserRegistered,
    UserUpdated,
)


@dataclass(frozen=True)
class Sample:
    """One event as a producer hands it to the outbox."""

    data: EventData
    source: str
    built_by: str
    subject: str | None = None

    @property
    def event_type(self) -> str:
        return self.data.event_type

    def envelope(self) -> Envelope:
        return Envelope.new(self.data, source=self.source, subject=self.subject)


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        return self._rows[0]

    def all(self) -> list[Any]:
        return list(self._rows)

    def scalar_one_or_none(self) -> Any:
        # Producers read back a value they wrote (e.g. RETURNING a row version); the
        # stand-in rows describe other tables, so it is unknown here.
        return None


class StandInSession:
    """An AsyncSession for producer code that only writes: every statement answers ``rows``."""

    def __init__(self, rows: list[Any] | None = None) -> None:
        self.rows = rows or []
        self.info: dict[str, Any] = {}

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> _Rows:
        return _Rows(self.rows)


class Recorder:
    """Stands in for ``add_event``: keeps what the producer would have written."""

    def __init__(self, built_by: str) -> None:
        self.built_by = built_by
        self.samples: list[Sample] = []

    async def add_event(
        self, session: Any, table: Any, data: EventData, *, source: str, subject: str | None = None
    ) -> Envelope:
        sample = Sample(data, source, self.built_by, subject)
        self.samples.append(sample)
        return sample.envelope()


@contextmanager
def recording(module: ModuleType, built_by: str) -> Iterator[Recorder]:
    recorder = Recorder(built_by)
    with mock.patch.object(module, "add_event", recorder.add_event):
        yield recorder


def _id() -> uuid.UUID:
    return uuid.uuid4()


async def _auth() -> list[Sample]:
    from auth_service import users

    row = SimpleNamespace(
        id=_id(), email="ada@example.com", full_name="Ada Lovelace", roles=["student", "admin"]
    )
    with recording(users, "services/auth/auth_service/users.py _publish") as recorder:
        await users._publish(StandInSession(), UserRegistered, row)
        await users._publish(StandInSession(), UserUpdated, row)
    return recorder.samples


async def _courses() -> list[Sample]:
    from courses_service import courses, enrollments

    course = SimpleNamespace(
        id=_id(),
        instructor_id=_id(),
        title="Plant physiology",
        price=4900,
        currency="eur",
        is_published=True,
        deleted_at=None,
    )
    section_id = _id()
    lessons = [
        SimpleNamespace(
            id=_id(),
            section_id=section_id,
            title="Light",
            position=0,
            media_id=_id(),
            duration_seconds=125,
            content="<p>Chlorophyll absorbs red and blue light.</p>",
        ),
        SimpleNamespace(
            id=_id(),
            section_id=section_id,
            title="Water",
            position=1,
            media_id=None,
            duration_seconds=None,
            content="",
        ),
    ]
    snapshot = await courses.course_snapshot(StandInSession(lessons), course)
    samples = [Sample(snapshot, courses.SOURCE, "services/courses/courses_service/courses.py")]
    # The seed announces its courses without title and lessons (seed.py _announce).
    samples.append(
        Sample(
            CoursePublished(
                course_id=course.id,
                instructor_id=course.instructor_id,
                price=course.price,
                currency=course.currency,
            ),
            "courses",
            "services/courses/courses_service/seed.py _announce",
        )
    )
    with recording(courses, "services/courses/courses_service/courses.py") as recorder:
        await courses._announce_unpublished(StandInSession(), course)
    samples += recorder.samples

    user_id, payment_id = _id(), _id()
    free = SimpleNamespace(id=_id(), user_id=user_id, course_id=course.id, source="free")
    paid = SimpleNamespace(id=_id(), user_id=user_id, course_id=course.id, source=str(payment_id))
    with recording(enrollments, "services/courses/courses_service/enrollments.py") as recorder:
        await enrollments.activate_enrollment(
            StandInSession([free]), user_id=user_id, course_id=course.id, source=enrollments.FREE
        )
        await enrollments.activate_enrollment(
            StandInSession([paid]), user_id=user_id, course_id=course.id, source=paid.source
        )
        await enrollments.revoke_enrollment(StandInSession([paid]), paid, reason="refunded")
    samples += recorder.samples

    lesson_id = lessons[1].id
    samples += [
        Sample(
            LessonCompleted(user_id=user_id, course_id=course.id, lesson_id=lesson_id),
            "courses",
            "services/courses/courses_service/progress.py complete_lesson",
        ),
        Sample(
            CourseCompleted(user_id=user_id, course_id=course.id, lesson_id=lesson_id),
            "courses",
            "services/courses/courses_service/progress.py complete_lesson",
        ),
        Sample(
            ReviewCreated(course_id=course.id, user_id=user_id, rating=4, review_id=_id()),
            "courses",
            "services/courses/courses_service/reviews.py create_review",
        ),
    ]
    return samples


async def _media() -> list[Sample]:
    media_id, owner_id = _id(), _id()
    return [
        Sample(
            MediaUploaded(media_id=media_id, owner_id=owner_id, content_type="video/mp4"),
            "media",
            "services/media/media_service/completion.py",
        ),
        Sample(
            MediaProcessed(
                media_id=media_id,
                owner_id=owner_id,
                content_type="video/mp4",
                duration=2.0,  # ffprobe's float seconds
                transcript="WEBVTT\n\n00:00.000 --> 00:02.000\nColour bars.\n",
                has_thumbnail=True,
            ),
            "media",
            "services/media/media_service/processing.py (a video with a transcript)",
        ),
        Sample(
            MediaProcessed(
                media_id=_id(),
                owner_id=owner_id,
                content_type="application/pdf",
                duration=None,
                transcript=None,
                has_thumbnail=False,
            ),
            "media",
            "services/media/media_service/processing.py (a document)",
        ),
    ]


async def _payments() -> list[Sample]:
    # Built as services/payments/payments_service/payments.py and subscriptions.py do.
    payment = SimpleNamespace(id=_id(), user_id=_id(), course_id=_id(), amount=4900, currency="usd")
    where = "services/payments/payments_service/payments.py"
    fields = {
        "payment_id": payment.id,
        "user_id": payment.user_id,
        "course_id": payment.course_id,
        "amount": payment.amount,
        "currency": payment.currency,
    }
    user_id = _id()
    subscriptions = "services/payments/payments_service/subscriptions.py"
    return [
        Sample(PaymentSucceeded(**fields), "payments", f"{where} _announce_success"),
        Sample(PaymentRefunded(**fields), "payments", f"{where} _announce_refund"),
        Sample(
            SubscriptionActivated(user_id=user_id, plan="pro", ai_daily_limit=200),
            "payments",
            f"{subscriptions} activate",
        ),
        Sample(
            SubscriptionCanceled(user_id=user_id, plan="pro", ai_daily_limit=20),
            "payments",
            f"{subscriptions} end",
        ),
    ]


async def _ai() -> list[Sample]:
    from ai_service import usage

    with recording(usage, "services/ai/ai_service/usage.py record_usage") as recorder:
        await usage.record_usage(
            StandInSession(),
            user_id=_id(),
            day=datetime.now(UTC).date(),
            tokens=123,
            cost=450,
            agent="chat",
        )
    return recorder.samples


async def producer_samples() -> list[Sample]:
    """Every sample, for every event type."""
    samples: list[Sample] = []
    for build in (_auth, _courses, _media, _payments, _ai):
        samples += await build()
    return samples
