"""Hot read queries on a lean path: psycopg straight, autocommit, prepared statements.

A SELECT through an :class:`~sqlalchemy.ext.asyncio.AsyncSession` costs far more CPU
than the query itself: the pool's pre-ping round trip, ``BEGIN`` and ``ROLLBACK``
round trips, the greenlet bridge, the statement's cache key and the result wrapping.
Measured on the catalog's first page (bench/RESULTS.md, "uncached catalog"): 1.3 ms of
CPU per page through a session, 0.17 ms through this pool. The difference was half of
what an uncached catalog page cost the API.

Statements are still written with SQLAlchemy Core — and so share the tables, the
visibility clauses and the typing of the rest of the service — but compiled *once* per
shape to SQL text (:func:`compile_query`) with named ``bindparam``\\ s for the values
that change per request. Each query is one statement in autocommit mode: it reads one
consistent snapshot and needs no transaction. psycopg prepares a statement on a
connection after a few executions (its ``prepare_threshold``), so PostgreSQL does not
plan it again each time.

There is no pre-ping. A connection found broken (the server restarted, a proxy cut
it) fails its query at once; the pool throws it away and the query runs again on the
next connection (a new one when none is left), so callers see at most a few failed
sends. Other errors (a cancelled query, a constraint) are raised as they are. Only use
this for reads: a failed write must never be retried blindly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from opentelemetry import trace
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement

from unpuzzle_common.db import libpq_url
from unpuzzle_common.observability import tracing_instrumented

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
_tracer = trace.get_tracer("unpuzzle.readpool")


@dataclass(frozen=True)
class CompiledQuery:
    """A Core statement as SQL text, and the values it bound when it was compiled."""

    name: str
    sql: str
    #: Every bind parameter's compile-time value (``LIMIT`` values, literals); named
    #: ``bindparam``\\ s without a value are None here and given at each execution.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: The named ``bindparam``\\ s compiled without a value: each execution must give them.
    required: frozenset[str] = frozenset()
    #: The statement itself, for running it on a session (:func:`session_fetch`).
    statement: ClauseElement | None = field(default=None, compare=False, repr=False)

    def parameters(self, values: Mapping[str, Any] | None) -> dict[str, Any]:
        """The execution parameters: the defaults overridden by ``values``.

        A name the statement does not have, or a required one missing, is a KeyError:
        a forgotten value must never run as NULL (a visibility rule comparing with NULL
        would quietly change who sees what).
        """
        given = (values or {}).keys()
        unknown = given - self.defaults.keys()
        missing = self.required - given
        if unknown or missing:
            raise KeyError(
                f"{self.name}: unknown bind parameters {sorted(unknown)}, missing {sorted(missing)}"
            )
        return {**self.defaults, **(values or {})}


def compile_query(name: str, statement: ClauseElement) -> CompiledQuery:
    """Compile a Core statement for psycopg (do it once per statement shape and keep it)."""
    compiled = statement.compile(dialect=_DIALECT)
    required = frozenset(
        key for key in compiled.params if key in compiled.binds and compiled.binds[key].required
    )
    return CompiledQuery(
        name=name,
        sql=str(compiled),
        defaults=dict(compiled.params),
        required=required,
        statement=statement,
    )


class Fetch(Protocol):
    """Runs a compiled query: :meth:`ReadPool.fetch`, or a session's (:func:`session_fetch`)."""

    async def __call__(
        self, query: CompiledQuery, values: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]: ...


def session_fetch(session: AsyncSession) -> Fetch:
    """Run compiled queries inside ``session``'s transaction, so they see its own
    uncommitted writes (what a write's answer is built from)."""

    async def fetch(
        query: CompiledQuery, values: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        assert query.statement is not None
        query.parameters(values)  # the same check of the names as on the pool
        result = await session.execute(query.statement, dict(values or {}))  # type: ignore[arg-type]
        return [tuple(row) for row in result]

    return fetch


class ReadPool:
    """A small psycopg connection pool for read-only statements (see the module doc)."""

    def __init__(
        self,
        database_url: str,
        *,
        max_size: int,
        application_name: str = "",
        timeout: float = 10.0,
        prepared_statements: bool = True,
    ) -> None:
        """``prepared_statements=False`` for a pooler that cannot hold them (PgBouncer in
        transaction mode before 1.21, or without ``max_prepared_statements``)."""
        self.application_name = application_name
        self._max_size = max(1, max_size)
        kwargs: dict[str, Any] = {"autocommit": True}
        if not prepared_statements:
            kwargs["prepare_threshold"] = None
        if application_name:
            kwargs["application_name"] = application_name
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=self._max_size,
            kwargs=kwargs,
            timeout=timeout,
            open=False,
            name=application_name or None,
        )

    async def open(self) -> None:
        """Start connecting in the background (the service starts with the database down)."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def fetch(
        self, query: CompiledQuery, values: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of ``query`` with ``values`` bound, as tuples in select order."""
        parameters = query.parameters(values)
        if not tracing_instrumented():
            return await self._fetch(query, parameters)
        with _tracer.start_as_current_span(
            f"SELECT {query.name}",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": query.sql},
        ):
            return await self._fetch(query, parameters)

    async def _fetch(self, query: CompiledQuery, parameters: dict[str, Any]) -> list[tuple]:
        # A connection found broken is thrown away when it goes back to the pool, and the
        # query runs again on the next one. After a database restart every idle
        # connection is broken: each costs one failed send, so at most max_size + 1 tries.
        for _ in range(self._max_size):
            try:
                return await self._execute(query.sql, parameters)
            except _BrokenConnection:
                continue
        try:
            return await self._execute(query.sql, parameters)
        except _BrokenConnection as exc:
            raise exc.__cause__ from None  # type: ignore[misc]

    async def _execute(self, sql: str, parameters: dict[str, Any]) -> list[tuple]:
        async with self._pool.connection() as conn:
            try:
                cursor = await conn.execute(sql, parameters)  # type: ignore[arg-type]
                return await cursor.fetchall()
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    raise _BrokenConnection from exc
                raise


class _BrokenConnection(Exception):
    """The connection died under the query (its cause is the driver's error)."""
