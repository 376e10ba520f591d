"""Events become facts: one row per event id, the fields the rollups need in columns.

Every event type of the platform (``EVENT_TYPES``) has an extractor here; an event of a
type this code does not know yet (a newer producer) is still stored, with only its
envelope fields, so a later version can roll it up with ``rebuild``. Data that does not
fit its type's schema is a :class:`PoisonEvent` (dead-lettered, never half-counted).

Personal and bulky fields (emails, names, transcripts, lesson lists) are not copied into
``facts.data``: analytics needs none of them and should not hold a second copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.bulk import insert_rows, rows_param
from analytics_service.models import courses, facts
from unpuzzle_common.events.consumer import PoisonEvent
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import (
    AiUsageRecorded,
    CourseCompleted,
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
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
    parse_data,
)

#: ISO 4217 "no currency": a refund whose currency cannot be known (no currency in the
#: event, no payment fact, no course) is still counted, apart from real currencies.
NO_CURRENCY = "xxx"

#: Fields of event data never stored in ``facts.data``.
OMITTED_DATA = frozenset({"email", "full_name", "transcript", "transcript_segments", "lessons"})


@dataclass(frozen=True)
class Fact:
    """One event as analytics stores it (a row of ``facts``)."""

    event_id: uuid.UUID
    type: str
    source: str
    occurred_at: datetime
    subject: str
    data: dict[str, Any]
    course_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    amount: int | None = None
    currency: str | None = None
    rating: int | None = None
    tokens: int | None = None
    cost_micro_usd: int | None = None
    day: date = field(init=False)

    def __post_init__(self) -> None:
        # Envelope times are UTC (the envelope normalises them): the day is the UTC day.
        object.__setattr__(self, "day", self.occurred_at.date())

    def row(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "source": self.source,
            "occurred_at": self.occurred_at,
            "day": self.day,
            "subject": self.subject,
            "course_id": self.course_id,
            "user_id": self.user_id,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "rating": self.rating,
            "tokens": self.tokens,
            "cost_micro_usd": self.cost_micro_usd,
            "data": self.data,
        }


#: The columns a consumer writes (``received_at`` is the database's clock).
FACT_COLUMNS = tuple(c.name for c in facts.columns if c.name != "received_at")
_INSERT_FACTS = insert_rows(
    facts, FACT_COLUMNS, "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)

Extractor = Callable[[Any], dict[str, Any]]
_EXTRACTORS: dict[str, Extractor] = {}


def _extracts(*models: type[EventData]) -> Callable[[Extractor], Extractor]:
    def register(fn: Extractor) -> Extractor:
        for model in models:
            _EXTRACTORS[model.event_type] = fn
        return fn

    return register


@_extracts(UserRegistered, UserUpdated)
def _user(data: UserRegistered) -> dict[str, Any]:
    return {"user_id": data.user_id}


@_extracts(CoursePublished, CourseUnpublished)
def _course(data: CoursePublished) -> dict[str, Any]:
    return {"course_id": data.course_id, "user_id": data.instructor_id, "currency": data.currency}


@_extracts(PaymentSucceeded, PaymentRefunded)
def _payment(data: PaymentSucceeded | PaymentRefunded) -> dict[str, Any]:
    return {
        "payment_id": data.payment_id,
        "user_id": data.user_id,
        "course_id": data.course_id,
        "amount": data.amount,
        "currency": data.currency,  # None on a refund that does not say: resolved on store
    }


@_extracts(EnrollmentCreated, EnrollmentRevoked)
def _enrollment(data: EnrollmentCreated) -> dict[str, Any]:
    return {"user_id": data.user_id, "course_id": data.course_id, "payment_id": data.payment_id}


@_extracts(LessonCompleted, CourseCompleted)
def _progress(data: LessonCompleted) -> dict[str, Any]:
    return {"user_id": data.user_id, "course_id": data.course_id}


@_extracts(ReviewCreated)
def _review(data: ReviewCreated) -> dict[str, Any]:
    return {"user_id": data.user_id, "course_id": data.course_id, "rating": data.rating}


@_extracts(MediaUploaded, MediaProcessed)
def _media(data: MediaUploaded) -> dict[str, Any]:
    return {"user_id": data.owner_id}


@_extracts(SubscriptionActivated, SubscriptionCanceled)
def _subscription(data: SubscriptionActivated) -> dict[str, Any]:
    return {"user_id": data.user_id}


@_extracts(AiUsageRecorded)
def _ai_usage(data: AiUsageRecorded) -> dict[str, Any]:
    return {"user_id": data.user_id, "tokens": data.tokens, "cost_micro_usd": data.cost_micro_usd}


#: The event types with an extractor (a test checks this covers ``EVENT_TYPES``).
HANDLED_TYPES: frozenset[str] = frozenset(_EXTRACTORS)


def fact_from(envelope: Envelope) -> Fact:
    """The fact of one event; :class:`PoisonEvent` when its data does not fit its type."""
    fields: dict[str, Any] = {}
    extractor = _EXTRACTORS.get(envelope.type)
    if extractor is not None:
        try:
            fields = extractor(parse_data(envelope.type, envelope.data))
        except ValidationError as exc:
            raise PoisonEvent(f"invalid {envelope.type} data: {exc}") from exc
    return Fact(
        event_id=envelope.id,
        type=envelope.type,
        source=envelope.source,
        occurred_at=envelope.time,
        subject=envelope.subject,
        data={k: v for k, v in envelope.data.items() if k not in OMITTED_DATA},
        **fields,
    )


async def store_facts(session: AsyncSession, batch: Sequence[Fact]) -> list[Fact]:
    """Insert the facts not stored before; return those (each event counts once).

    Refunds that do not name their currency get it here, once, so that the stored fact
    (and anything rebuilt from it) never depends on what arrived when.
    """
    unique = list({fact.event_id: fact for fact in batch}.values())
    unique = await _resolve_refund_currencies(session, unique)
    if not unique:
        return []
    result = await session.execute(_INSERT_FACTS, rows_param(fact.row() for fact in unique))
    stored = set(result.scalars())
    return [fact for fact in unique if fact.event_id in stored]


async def _resolve_refund_currencies(session: AsyncSession, batch: list[Fact]) -> list[Fact]:
    """Currency of a refund without one: its payment's, else its course's, else "xxx"."""
    missing = [f for f in batch if f.type == PaymentRefunded.event_type and f.currency is None]
    if not missing:
        return batch
    by_payment = {
        f.payment_id: f.currency
        for f in batch
        if f.type == PaymentSucceeded.event_type and f.currency is not None
    }
    payment_ids = {f.payment_id for f in missing} - by_payment.keys()
    if payment_ids:
        rows = await session.execute(
            select(facts.c.payment_id, facts.c.currency).where(
                facts.c.type == PaymentSucceeded.event_type,
                facts.c.payment_id.in_(payment_ids),
            )
        )
        by_payment.update({payment_id: currency for payment_id, currency in rows})
    course_ids = {f.course_id for f in missing if f.payment_id not in by_payment}
    by_course: dict[uuid.UUID, str] = {}
    if course_ids:
        rows = await session.execute(
            select(courses.c.course_id, courses.c.currency).where(
                courses.c.course_id.in_(course_ids)
            )
        )
        by_course = {course_id: currency for course_id, currency in rows}
    resolved = {
        f.event_id: replace(
            f,
            currency=by_payment.get(f.payment_id) or by_course.get(f.course_id) or NO_CURRENCY,  # type: ignore[arg-type]
        )
        for f in missing
    }
    return [resolved.get(f.event_id, f) for f in batch]
