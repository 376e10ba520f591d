"""The envelope every event travels in, and the NATS subject it is published on.

On the wire an event is the envelope as JSON,
``{id, type, source, time, subject, data, traceparent}``, published on
``<prefix>.<type>`` (e.g. ``unpuzzle.user.registered.v1``) with the header
``Nats-Msg-Id`` = envelope id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from unpuzzle_common.events.schemas import EventData, parse_data


def subject_for(prefix: str, event_type: str) -> str:
    """The NATS subject of an event type: ``f"{prefix}.{event_type}"``."""
    return f"{prefix}.{event_type}"


class Envelope(BaseModel):
    """One event: its identity, origin, time, the entity it is about and its data."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    type: str = Field(min_length=1)
    #: The producing service ("auth", "payments", ...).
    source: str = Field(min_length=1)
    #: When the event happened (UTC, RFC 3339 on the wire).
    time: AwareDatetime
    #: Id of the entity the event is about.
    subject: str = Field(min_length=1)
    data: dict[str, Any]
    #: W3C trace context of the request that caused the event, if it was traced.
    traceparent: str | None = None
    tracestate: str | None = None

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def new(
        cls,
        data: EventData,
        *,
        source: str,
        subject: str | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> Envelope:
        """Wrap ``data`` in a fresh envelope (new id, current time)."""
        return cls(
            id=uuid.uuid4(),
            type=data.event_type,
            source=source,
            time=datetime.now(UTC),
            subject=subject if subject is not None else data.default_subject(),
            data=data.model_dump(mode="json"),
            traceparent=traceparent,
            tracestate=tracestate,
        )

    def parsed(self) -> EventData:
        """The typed ``data`` (see :func:`~unpuzzle_common.events.schemas.parse_data`)."""
        return parse_data(self.type, self.data)

    def to_json(self) -> bytes:
        """The wire form (UTF-8 JSON)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse the wire form; raises :class:`pydantic.ValidationError` when malformed."""
        return cls.model_validate_json(raw)
