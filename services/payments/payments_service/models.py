"""Tables of the ``payments`` schema.

Money is an integer amount in the currency's minor units with a lower-case ISO 4217
code, everywhere. Timestamps are UTC.

Two read models are fed by the courses service's events, so a purchase never waits
for another service: ``courses`` (price and visibility, from course.published.v1 /
course.unpublished.v1) and ``enrollments`` (who already has access, from
enrollment.created.v1 / enrollment.revoked.v1). Each row remembers the time of the
event it reflects; an older event never overwrites a newer one.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from unpuzzle_common.events.outbox import inbox_table, outbox_table

SCHEMA = "payments"
metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

#: Payment states (see payments_service.payments for the transitions).
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUNDED = "refunded"
PAYMENT_STATES = (PENDING, SUCCEEDED, FAILED, REFUNDED)

#: Subscription states (see payments_service.subscriptions).
SUB_PENDING = "pending"
SUB_ACTIVE = "active"
SUB_CANCELED = "canceled"
SUBSCRIPTION_STATES = (SUB_PENDING, SUB_ACTIVE, SUB_CANCELED)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _timestamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


payments = Table(
    "payments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False, server_default=PENDING),
    Column("provider", String(16), nullable=False, server_default="stripe"),
    #: The Stripe PaymentIntent (``pi_…``); null until Stripe answered the create call.
    Column("provider_payment_id", String(255), nullable=True, unique=True),
    Column("provider_refund_id", String(255), nullable=True),
    Column("amount_refunded", Integer, nullable=False, server_default=text("0")),
    Column("failure_reason", Text, nullable=True),
    #: Stripe reported a full refund before we had recorded the success (out of order).
    Column("refund_reported_at", DateTime(timezone=True), nullable=True),
    *_timestamps(),
    Column("succeeded_at", DateTime(timezone=True), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(f"status IN ({_in(PAYMENT_STATES)})", name="status_known"),
    Index("ix_payments_user_id_created_at", "user_id", "created_at"),
    Index("ix_payments_user_id_course_id", "user_id", "course_id"),
)

#: Stripe events already applied: the row is written in the transaction of the effect,
#: so a redelivered event (same id) finds it and changes nothing.
provider_events = Table(
    "provider_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("provider", String(16), nullable=False, server_default="stripe"),
    Column("type", String(100), nullable=False),
    #: When the provider created the event.
    Column("provider_created_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    #: What applying it did ("succeeded", "ignored: …"), for support and debugging.
    Column("outcome", Text, nullable=False, server_default=""),
)

#: Read model of the courses service's published courses.
courses = Table(
    "courses",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("instructor_id", UUID(as_uuid=True), nullable=False),
    Column("title", String(200), nullable=True),
    Column("price", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("published", Boolean, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

#: Read model of the courses service's enrollments: who already has access.
enrollments = Table(
    "enrollments",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("enrollment_id", UUID(as_uuid=True), nullable=False),
    #: ``"free"`` or the id of the payment that granted it.
    Column("source", String(36), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

#: The Stripe Customer of each user who subscribed.
customers = Table(
    "customers",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("provider_customer_id", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default=SUB_PENDING),
    Column("provider_subscription_id", String(255), nullable=True, unique=True),
    Column("current_period_end", DateTime(timezone=True), nullable=True),
    Column("cancel_at_period_end", Boolean, nullable=False, server_default=text("false")),
    #: Creation time of the newest Stripe event applied: older ones are ignored.
    Column("provider_event_at", DateTime(timezone=True), nullable=True),
    *_timestamps(),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(f"status IN ({_in(SUBSCRIPTION_STATES)})", name="status_known"),
    # One current (pending or active) subscription per user.
    Index(
        "uq_subscriptions_current_user",
        "user_id",
        unique=True,
        postgresql_where=text(f"status IN ('{SUB_PENDING}', '{SUB_ACTIVE}')"),
    ),
    Index("ix_subscriptions_status_current_period_end", "status", "current_period_end"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
