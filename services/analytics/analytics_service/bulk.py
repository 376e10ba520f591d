"""Batch writes as one statement whose text never changes: the rows travel as one JSON
parameter, ``INSERT INTO t (cols) SELECT cols FROM json_to_recordset(:rows) ...``.

A multi-row ``VALUES`` list is new SQL for every batch size: SQLAlchemy compiles it
again (PostgreSQL ``INSERT ... ON CONFLICT`` statements are not in its compiled cache)
and psycopg parses its thousands of placeholders again, which cost more than running
it. Here the SQL is written once per table, the rows are serialised by the C JSON
encoder and parsed by PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, TextClause, text
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()

#: The alias of the target table, for ``ON CONFLICT ... DO UPDATE SET x = t.x + ...``.
TARGET = "t"


def sql_type(table: Table, column: str) -> str:
    """The PostgreSQL type of a column, as DDL spells it (``UUID``, ``BIGINT``...)."""
    return table.c[column].type.compile(dialect=_DIALECT)


def batch_rows(columns: Sequence[tuple[str, str]]) -> str:
    """A FROM item reading ``:rows`` (a JSON array of objects) as typed columns."""
    definition = ", ".join(f"{name} {type_}" for name, type_ in columns)
    return f"json_to_recordset(CAST(:rows AS json)) AS batch({definition})"


def insert_rows(
    table: Table, columns: Sequence[str], tail: str = "", *, order_by: Sequence[str] = ()
) -> TextClause:
    """``INSERT INTO table AS t (columns) SELECT columns FROM the batch [ORDER BY] tail``.

    ``tail`` holds the ``ON CONFLICT`` and ``RETURNING`` clauses; ``order_by`` makes
    concurrent writers take the rows' locks in one order.
    """
    names = ", ".join(columns)
    source = batch_rows([(c, sql_type(table, c)) for c in columns])
    order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
    return text(
        f"INSERT INTO {table.schema}.{table.name} AS {TARGET} ({names}) "
        f"SELECT {names} FROM {source}{order} {tail}"
    )


def rows_param(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The ``:rows`` parameter: the rows as JSON (ids, dates and times as strings)."""
    return {"rows": json.dumps(list(rows), default=str, separators=(",", ":"))}
