"""Explicit, idempotent JetStream setup: streams and durable consumers.

Every call *applies* the wanted configuration: it creates what is missing and updates
what exists with a different configuration (``js.pull_subscribe`` alone would keep an
old consumer's config silently). Run them at start-up of the relay / consumer.

Layout:

- one stream per producing service, ``{PREFIX}_{SERVICE}`` (e.g. ``UNPUZZLE_AUTH``),
  holding the subjects of the domains it produces (auth → ``unpuzzle.user.>``);
- one dead-letter stream ``{PREFIX}_DLQ`` on ``{prefix}.dlq.>``; a consumer's dead
  letters go to ``{prefix}.dlq.{consumer}``;
- durable pull consumers live on the *producer's* stream. nats-server 2.9 allows one
  ``filter_subject`` per consumer, so a service that needs several subjects uses one
  durable per producing stream with a wildcard filter (``unpuzzle.payment.>``) and
  dispatches on the envelope's ``type``; several explicit subjects
  (``filter_subjects``) are accepted only by servers >= 2.10.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger(__name__)

DAY = 86_400.0

#: Event domains (the first token of the event type) each service produces (DESIGN §4).
PRODUCED_DOMAINS: dict[str, tuple[str, ...]] = {
    "auth": ("user",),
    "courses": ("course", "enrollment", "lesson", "review"),
    "media": ("media",),
    "payments": ("payment", "subscription"),
    "ai": ("ai",),
}

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"not a valid JetStream name: {value!r}")
    return value


def stream_name(prefix: str, service: str) -> str:
    """The stream of a producing service: ``stream_name("unpuzzle", "auth") == "UNPUZZLE_AUTH"``."""
    return _check_name(f"{prefix}_{service}".upper())


def dlq_stream_name(prefix: str) -> str:
    """The dead-letter stream: ``"UNPUZZLE_DLQ"``."""
    return _check_name(f"{prefix}_DLQ".upper())


def dlq_subject(prefix: str, consumer: str) -> str:
    """Where a consumer's dead letters go: ``"unpuzzle.dlq.<consumer>"``."""
    return f"{prefix}.dlq.{_check_name(consumer)}"


def domain_subjects(prefix: str, domains: Iterable[str]) -> list[str]:
    """Wildcard subjects of event domains: ``["unpuzzle.user.>"]``."""
    return [f"{prefix}.{domain}.>" for domain in domains]


def service_subjects(prefix: str, service: str) -> list[str]:
    """The subjects of the stream of ``service`` (from :data:`PRODUCED_DOMAINS`)."""
    try:
        domains = PRODUCED_DOMAINS[service]
    except KeyError:
        raise ValueError(f"{service!r} produces no events") from None
    return domain_subjects(prefix, domains)


def _differs(a: float | None, b: float | None) -> bool:
    return abs((a or 0.0) - (b or 0.0)) > 1e-3


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: Sequence[str],
    *,
    duplicate_window: float = 120.0,
    max_age: float = 7 * DAY,
    storage: StorageType = StorageType.FILE,
    description: str | None = None,
) -> StreamInfo:
    """Create the stream, or update it when its subjects, windows or description differ.

    ``duplicate_window`` (seconds) is how long ``Nats-Msg-Id`` de-duplicates; ``max_age``
    (seconds, 0 = forever) how long messages are kept. Storage cannot change on an
    existing stream: a difference raises ``ValueError``.
    """
    _check_name(name)
    if max_age and duplicate_window > max_age:
        raise ValueError("duplicate_window cannot exceed max_age")
    wanted = StreamConfig(
        name=name,
        subjects=list(subjects),
        duplicate_window=duplicate_window,
        max_age=max_age,
        storage=storage,
        description=description,
    )
    try:
        current = (await js.stream_info(name)).config
    except NotFoundError:
        log.info("creating stream %s on %s", name, subjects)
        try:
            return await js.add_stream(wanted)
        except BadRequestError:
            # Another process (two workers starting together) created it between our
            # look-up and our create: apply the config to the stream that now exists.
            current = (await js.stream_info(name)).config
    if current.storage != storage:
        raise ValueError(f"stream {name} has storage {current.storage}, wanted {storage}")
    if (
        sorted(current.subjects or []) == sorted(subjects)
        and not _differs(current.duplicate_window, duplicate_window)
        and not _differs(current.max_age, max_age)
        and (current.description or None) == description
    ):
        return await js.stream_info(name)
    log.info("updating stream %s", name)
    updated = current.evolve(
        subjects=list(subjects),
        duplicate_window=duplicate_window,
        max_age=max_age,
        description=description,
    )
    return await js.update_stream(updated)


async def ensure_service_stream(
    js: JetStreamContext, prefix: str, service: str, **options: float
) -> StreamInfo:
    """:func:`ensure_stream` for a producing service's stream (name and subjects derived)."""
    return await ensure_stream(
        js, stream_name(prefix, service), service_subjects(prefix, service), **options
    )


async def ensure_dlq_stream(
    js: JetStreamContext, prefix: str, *, max_age: float = 30 * DAY
) -> StreamInfo:
    """:func:`ensure_stream` for the dead-letter stream ``{PREFIX}_DLQ`` on ``{prefix}.dlq.>``."""
    return await ensure_stream(
        js,
        dlq_stream_name(prefix),
        [f"{prefix}.dlq.>"],
        max_age=max_age,
        duplicate_window=min(120.0, max_age) if max_age else 120.0,
    )


async def ensure_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    filter_subject: str | Sequence[str],
    *,
    max_deliver: int = 5,
    ack_wait: float = 30.0,
    max_ack_pending: int = 1000,
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
    description: str | None = None,
) -> ConsumerInfo:
    """Create the durable pull consumer (explicit ack), or update it when its config differs.

    Updated in place: filter subject, ``max_deliver``, ``ack_wait`` (seconds),
    ``max_ack_pending``, description. ``deliver_policy`` only applies at creation.
    A list of several filter subjects needs nats-server >= 2.10 (see module doc).
    """
    _check_name(durable)
    subjects = [filter_subject] if isinstance(filter_subject, str) else list(filter_subject)
    if not subjects:
        raise ValueError("a consumer needs a filter subject")
    if len(subjects) > 1:
        version = js._nc.connected_server_version
        if (version.major, version.minor) < (2, 10):
            raise ValueError(
                "several filter subjects need nats-server >= 2.10; use a wildcard "
                "or one durable per subject"
            )
    single = subjects[0] if len(subjects) == 1 else None
    wanted = ConsumerConfig(
        name=durable,
        durable_name=durable,
        description=description,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=deliver_policy,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subject=single,
        filter_subjects=None if single else subjects,
    )
    try:
        current = (await js.consumer_info(stream, durable)).config
    except NotFoundError:
        log.info("creating consumer %s on %s (%s)", durable, stream, subjects)
        return await js.add_consumer(stream, wanted)
    current_subjects = (
        [current.filter_subject] if current.filter_subject else list(current.filter_subjects or [])
    )
    if (
        sorted(current_subjects) == sorted(subjects)
        and current.max_deliver == max_deliver
        and not _differs(current.ack_wait, ack_wait)
        and current.max_ack_pending == max_ack_pending
        and (current.description or None) == description
    ):
        return await js.consumer_info(stream, durable)
    log.info("updating consumer %s on %s", durable, stream)
    # nats-server answers a create on an existing durable by updating its config.
    return await js.add_consumer(stream, wanted.evolve(deliver_policy=current.deliver_policy))
