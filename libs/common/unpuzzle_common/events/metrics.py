"""Prometheus metrics of the event plumbing, on the default registry.

Defined once at import; every series carries the ``service`` label so that several
services' series stay apart when scraped through one registry (tests, dev runs).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "events_published_total",
    "Outbox events stored by JetStream (first time, not counting duplicates).",
    ["service", "type"],
)
EVENTS_PUBLISH_DUPLICATES = Counter(
    "events_publish_duplicates_total",
    "Re-publications JetStream dropped as duplicates (Nats-Msg-Id within the window).",
    ["service", "type"],
)
EVENTS_PUBLISH_FAILURES = Counter(
    "events_publish_failures_total",
    "Outbox publications that failed (NATS unreachable, no stream, timeout).",
    ["service"],
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Events handled by a consumer, by result: applied, duplicate, failed (will be "
    "redelivered), dead_lettered.",
    ["service", "consumer", "result"],
)
OUTBOX_LAG_EVENTS = Gauge(
    "outbox_lag_events",
    "Outbox rows not yet published.",
    ["service"],
)
OUTBOX_LAG_SECONDS = Gauge(
    "outbox_lag_seconds",
    "Age in seconds of the oldest unpublished outbox row (0 when none).",
    ["service"],
)

#: The consumer results, as used in the ``result`` label.
APPLIED = "applied"
DUPLICATE = "duplicate"
FAILED = "failed"
DEAD_LETTERED = "dead_lettered"
