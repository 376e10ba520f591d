"""Keeping the event tables bounded: old published outbox rows and old inbox rows go.

An outbox row is needed until it is published (and a while after, to see what was
sent); an inbox row until no delivery of its event can come any more. Producers'
streams keep events 7 days (:func:`~unpuzzle_common.events.jetstream.ensure_stream`),
so a consumer replayed from the start of a stream meets nothing older: inbox rows are
kept ``events_retention_days`` (default 8, at least 7). Unpublished outbox rows are
never deleted.

Every worker runs one :class:`EventHousekeeping` next to its relay and consumers: once
at start, then every ``events_housekeeping_interval`` seconds. Rows go in batches, each
its own short transaction, so a large backlog never holds long locks. The tables have
no index on their timestamps (one more index on every insert of the hot path); a batch
finds its rows by scanning from the start of the table, where the oldest rows are. A failure is
logged and tried again at the next interval; it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unpuzzle_common.db import transaction
from unpuzzle_common.events.outbox import prune_inbox, prune_published

log = logging.getLogger("unpuzzle.events.housekeeping")

PRUNED = Counter(
    "events_rows_pruned_total",
    "Outbox and inbox rows deleted by the worker's housekeeping",
    ["service", "table"],
)


class EventHousekeeping:
    """Prunes one service's outbox and inbox on a schedule (see the module doc)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        service: str,
        outbox: Table | None,
        inbox: Table | None,
        retention: timedelta,
        interval: float,
        batch: int = 5_000,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._tables = [
            (name, table, prune)
            for name, table, prune in (
                ("outbox", outbox, prune_published),
                ("inbox", inbox, prune_inbox),
            )
            if table is not None
        ]
        self._retention = retention
        self._interval = interval
        self._batch = batch

    async def prune_once(self) -> dict[str, int]:
        """Delete what is older than the retention now; how many rows per table."""
        pruned: dict[str, int] = {}
        for name, table, prune in self._tables:
            total = 0
            while True:
                async with transaction(self._sessions) as session:
                    deleted = await prune(
                        session, table, older_than=self._retention, limit=self._batch
                    )
                total += deleted
                PRUNED.labels(self._service, name).inc(deleted)
                if deleted < self._batch:
                    break
            pruned[name] = total
        if any(pruned.values()):
            log.info("pruned the event tables", extra={"pruned": pruned})
        return pruned

    async def run(self, stop: asyncio.Event) -> None:
        """Prune now and then every interval until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.prune_once()
            except Exception:
                log.exception("event housekeeping failed; trying again at the next interval")
            try:
                await asyncio.wait_for(stop.wait(), self._interval)
            except TimeoutError:
                pass
