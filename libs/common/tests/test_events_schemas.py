"""Event schemas and envelope: no server needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from unpuzzle_common.events import (
    EVENT_TYPES,
    AiUsageRecorded,
    EnrollmentCreated,
    Envelope,
    PaymentSucceeded,
    UnknownEventType,
    UserRegistered,
    parse_data,
    subject_for,
)

DESIGN_TYPES = {
    "user.registered.v1", "user.updated.v1", "course.published.v1", "course.unpublished.v1",
    "payment.succeeded.v1", "payment.refunded.v1", "enrollment.created.v1",
    "enrollment.revoked.v1", "lesson.completed.v1", "course.completed.v1", "review.created.v1",
    "media.uploaded.v1", "media.processed.v1", "subscription.activated.v1",
    "subscription.canceled.v1", "ai.usage.recorded.v1",
}  # fmt: skip


def test_registry_covers_design() -> None:
    assert set(EVENT_TYPES) == DESIGN_TYPES
    for event_type, model in EVENT_TYPES.items():
        assert model.event_type == event_type
        assert model.subject_field in model.model_fields


def _payment(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "payment_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "course_id": str(uuid.uuid4()),
        "amount": 1999,
        "currency": "usd",
    }
    data.update(overrides)
    return data


def test_money_is_integer_minor_units_and_lower_case_currency() -> None:
    assert parse_data("payment.succeeded.v1", _payment()).amount == 1999
    for bad in ({"amount": 19.99}, {"amount": "1999"}, {"amount": -1}, {"currency": "USD"}):
        with pytest.raises(ValidationError):
            parse_data("payment.succeeded.v1", _payment(**bad))
    with pytest.raises(ValidationError):
        AiUsageRecorded(user_id=uuid.uuid4(), tokens=10, cost_micro_usd=0.5, agent="chat")  # type: ignore[arg-type]


def test_added_fields_are_ignored_and_unknown_types_refused() -> None:
    parsed = parse_data("payment.succeeded.v1", _payment(new_optional_field="x"))
    assert isinstance(parsed, PaymentSucceeded)
    with pytest.raises(UnknownEventType):
        parse_data("payment.exploded.v1", _payment())


def test_enrollment_source_is_free_or_payment_id() -> None:
    ids = {"enrollment_id": uuid.uuid4(), "user_id": uuid.uuid4(), "course_id": uuid.uuid4()}
    assert EnrollmentCreated(source="free", **ids).payment_id is None
    pid = uuid.uuid4()
    assert EnrollmentCreated(source=str(pid), **ids).payment_id == pid
    with pytest.raises(ValidationError):
        EnrollmentCreated(source="gift", **ids)


def test_envelope_round_trip_in_utc() -> None:
    user_id = uuid.uuid4()
    data = UserRegistered(user_id=user_id, email="a@example.com", full_name="A", roles=["student"])
    envelope = Envelope.new(data, source="auth")
    assert envelope.subject == str(user_id)
    assert envelope.time.tzinfo is not None
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert again.parsed() == data
    local = envelope.model_copy(update={}).model_dump(mode="json")
    local["time"] = datetime.now(timezone(timedelta(hours=2))).isoformat()
    assert Envelope.model_validate(local).time.utcoffset() == UTC.utcoffset(None)
    local["time"] = "2024-01-01T00:00:00"  # naive: refused
    with pytest.raises(ValidationError):
        Envelope.model_validate(local)
    assert subject_for("unpuzzle", data.event_type) == "unpuzzle.user.registered.v1"
