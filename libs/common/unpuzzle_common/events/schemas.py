"""The ``data`` of every event the platform publishes (DESIGN.md §4), one model each.

Producers build these models and hand them to :func:`~unpuzzle_common.events.outbox.add_event`;
consumers turn an envelope's ``data`` back into one with :func:`parse_data`.

Conventions:

- ids are :class:`uuid.UUID`; money is an integer amount in the currency's minor units
  with a lower-case ISO 4217 currency code — never a float or a decimal string;
- the AI cost is ``cost_micro_usd``: an integer number of micro-dollars
  (1 USD = 1_000_000), because a float must never carry money;
- models ignore unknown fields (``extra="ignore"``): adding an optional field keeps
  ``v1``, and consumers on the older model keep working;
- each model names its ``event_type`` and the field whose value is the envelope's
  ``subject`` (the entity the event is about) by default.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

#: An amount in the currency's minor units (1999 = 19.99). Strict: a float is refused.
MinorUnits = Annotated[StrictInt, Field(ge=0)]
#: ISO 4217 code, lower case, as Stripe writes it ("usd", "eur").
Currency = Annotated[str, Field(pattern=r"^[a-z]{3}$")]
#: Micro-dollars (1 USD = 1_000_000). Strict: a float is refused.
MicroUsd = Annotated[StrictInt, Field(ge=0)]


class UnknownEventType(KeyError):
    """An event type that has no model in :data:`EVENT_TYPES`."""


class EventData(BaseModel):
    """Base of every event's ``data``. Subclasses set ``event_type`` and ``subject_field``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: Versioned type, e.g. ``"user.registered.v1"``; the NATS subject is ``<prefix>.<type>``.
    event_type: ClassVar[str]
    #: Field whose value becomes the envelope's ``subject`` when none is given.
    subject_field: ClassVar[str]

    def default_subject(self) -> str:
        """The id of the entity this event is about (the value of ``subject_field``)."""
        return str(getattr(self, self.subject_field))


class _UserData(EventData):
    subject_field = "user_id"
    user_id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]


class UserRegistered(_UserData):
    """A new account was created (auth)."""

    event_type = "user.registered.v1"


class UserUpdated(_UserData):
    """An account's profile or roles changed (auth); a full snapshot, not a diff."""

    event_type = "user.updated.v1"


class _CourseVisibility(EventData):
    subject_field = "course_id"
    course_id: uuid.UUID
    instructor_id: uuid.UUID
    price: MinorUnits
    currency: Currency


class PublishedLesson(BaseModel):
    """One lesson of a published course, as consumers (media, ai) need it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lesson_id: uuid.UUID
    section_id: uuid.UUID | None = None
    title: str
    position: int | None = None
    media_id: uuid.UUID | None = None
    duration_seconds: int | None = None
    #: The lesson's text (sanitised HTML or plain), for the tutor's grounding.
    content: str | None = None


class CoursePublished(_CourseVisibility):
    """A course became visible to everyone (courses).

    Also re-emitted, as a full snapshot, whenever a published course's title or
    lessons change, so read models (media access, tutor index) stay current.
    ``title`` and ``lessons`` are optional additions of v1.
    """

    event_type = "course.published.v1"

    title: str | None = None
    lessons: list[PublishedLesson] | None = None


class CourseUnpublished(_CourseVisibility):
    """A course was taken back to draft (courses)."""

    event_type = "course.unpublished.v1"


class PaymentSucceeded(EventData):
    """A course purchase was paid (payments, after Stripe's verified webhook)."""

    event_type = "payment.succeeded.v1"
    subject_field = "payment_id"
    payment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount: MinorUnits
    currency: Currency


class PaymentRefunded(EventData):
    """A payment was refunded (payments). ``currency`` is an optional addition to §4."""

    event_type = "payment.refunded.v1"
    subject_field = "payment_id"
    payment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount: MinorUnits
    currency: Currency | None = None


class _EnrollmentData(EventData):
    subject_field = "enrollment_id"
    enrollment_id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    #: ``"free"`` for a free course, otherwise the id (UUID string) of the payment.
    source: str

    @field_validator("source")
    @classmethod
    def _free_or_payment_id(cls, value: str) -> str:
        if value == "free":
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("source must be 'free' or a payment id (UUID)") from None

    @property
    def payment_id(self) -> uuid.UUID | None:
        """The paying payment's id, or ``None`` for a free enrollment."""
        return None if self.source == "free" else uuid.UUID(self.source)


class EnrollmentCreated(_EnrollmentData):
    """A student was granted access to a course (courses)."""

    event_type = "enrollment.created.v1"


class EnrollmentRevoked(_EnrollmentData):
    """A student lost access to a course, e.g. after a refund (courses)."""

    event_type = "enrollment.revoked.v1"
    reason: str | None = None


class LessonCompleted(EventData):
    """A student completed a lesson (courses)."""

    event_type = "lesson.completed.v1"
    subject_field = "lesson_id"
    user_id: uuid.UUID
    course_id: uuid.UUID
    lesson_id: uuid.UUID


class CourseCompleted(EventData):
    """A student completed every lesson of a course; ``lesson_id`` is the last one."""

    event_type = "course.completed.v1"
    subject_field = "course_id"
    user_id: uuid.UUID
    course_id: uuid.UUID
    lesson_id: uuid.UUID | None = None


class ReviewCreated(EventData):
    """A student reviewed a course (courses)."""

    event_type = "review.created.v1"
    subject_field = "course_id"
    course_id: uuid.UUID
    user_id: uuid.UUID
    rating: Annotated[StrictInt, Field(ge=1, le=5)]
    review_id: uuid.UUID | None = None


class _MediaData(EventData):
    subject_field = "media_id"
    media_id: uuid.UUID
    owner_id: uuid.UUID
    content_type: str
    #: Playing time in seconds, when known.
    duration: float | None = Field(default=None, ge=0)
    transcript: str | None = None


class MediaUploaded(_MediaData):
    """An upload was completed and stored (media); processing follows."""

    event_type = "media.uploaded.v1"


class TranscriptSegment(BaseModel):
    """A timed piece of a transcript (seconds from the start)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str


class MediaProcessed(_MediaData):
    """A media file finished processing: duration and transcript are known (media)."""

    event_type = "media.processed.v1"

    #: Optional addition of v1: timed segments, when the transcriber gives them.
    transcript_segments: list[TranscriptSegment] | None = None
    #: Optional addition of v1: whether a thumbnail was made (served by media's API).
    has_thumbnail: bool | None = None


class SubscriptionActivated(EventData):
    """A subscription became active (payments)."""

    event_type = "subscription.activated.v1"
    subject_field = "user_id"
    user_id: uuid.UUID
    plan: str
    ai_daily_limit: Annotated[StrictInt, Field(ge=0)]


class SubscriptionCanceled(EventData):
    """A subscription ended (payments); ``ai_daily_limit`` is the limit that now applies."""

    event_type = "subscription.canceled.v1"
    subject_field = "user_id"
    user_id: uuid.UUID
    plan: str
    ai_daily_limit: Annotated[StrictInt, Field(ge=0)] | None = None


class AiUsageRecorded(EventData):
    """An AI request was served and counted (ai). Cost in micro-dollars, never a float."""

    event_type = "ai.usage.recorded.v1"
    subject_field = "user_id"
    user_id: uuid.UUID
    tokens: Annotated[StrictInt, Field(ge=0)]
    cost_micro_usd: MicroUsd
    agent: str


#: Every event type of DESIGN.md §4, mapped to the model of its ``data``.
EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        UserRegistered,
        UserUpdated,
        CoursePublished,
        CourseUnpublished,
        PaymentSucceeded,
        PaymentRefunded,
        EnrollmentCreated,
        EnrollmentRevoked,
        LessonCompleted,
        CourseCompleted,
        ReviewCreated,
        MediaUploaded,
        MediaProcessed,
        SubscriptionActivated,
        SubscriptionCanceled,
        AiUsageRecorded,
    )
}


def parse_data(event_type: str, data: dict[str, Any]) -> EventData:
    """Validate ``data`` against the model of ``event_type``.

    Raises :class:`UnknownEventType` for a type without a model and
    :class:`pydantic.ValidationError` for data that does not fit it.
    """
    try:
        model = EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None
    return model.model_validate(data)
