"""W3C trace context across the outbox and NATS (there is no nats-py instrumentation).

The context is captured when an event is written to the outbox, becomes the parent
of the relay's PRODUCER span, travels in the message's ``traceparent`` header and is
the parent of the consumer's CONSUMER span, so one request can be followed end to end.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context

TRACER_NAME = "unpuzzle_common.events"


def tracer() -> trace.Tracer:
    """The tracer of the event plumbing (resolved at call time, so a provider set later counts)."""
    return trace.get_tracer(TRACER_NAME)


def current_trace_headers() -> dict[str, str]:
    """The active trace context as W3C headers (``traceparent``, ``tracestate``), maybe empty."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(
    headers: Mapping[str, str] | None,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> Context:
    """A context extracted from message headers, falling back to the given trace fields."""
    carrier = {k.lower(): v for k, v in (headers or {}).items()}
    if "traceparent" not in carrier and traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return propagate.extract(carrier)
