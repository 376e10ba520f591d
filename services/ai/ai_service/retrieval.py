"""Finding the passages of a course most relevant to a question.

PostgreSQL full-text search: the question becomes an OR of its stemmed words (an AND
would find nothing for most natural questions), passages matching any are ranked with
``ts_rank`` (more and denser matches first), and passages of the lesson the student
is on get a boost. Only the course's passages are ranked (filtered by course first:
the ``course_id`` and ``media_id`` indexes, the GIN index on ``passages.tsv`` for the
match), and only the top few rows are read whole: about 1 ms median, 6 ms p99 over
10,000 passages on a development machine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Integer, Uuid

from ai_service.models import TS_CONFIG

#: Rank multiplier for passages of the lesson the question is about.
SAME_LESSON_BOOST = 1.5
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class Passage:
    """A passage retrieved for an answer, with what its citation shows."""

    id: int
    source: str
    lesson_id: uuid.UUID | None
    lesson_title: str | None
    media_id: uuid.UUID | None
    content: str
    start_seconds: float | None
    end_seconds: float | None
    rank: float = 0.0

    def citation(self) -> dict[str, Any]:
        """What the client gets to show where an answer came from."""
        snippet = self.content
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
        return {
            "passage_id": self.id,
            "source": self.source,
            "lesson_id": str(self.lesson_id) if self.lesson_id else None,
            "lesson_title": self.lesson_title,
            "media_id": str(self.media_id) if self.media_id else None,
            "start_seconds": self.start_seconds,
            "end_seconds": self.end_seconds,
            "snippet": snippet,
        }


# The passages of a course: its lessons' text (by course_id) and the transcripts of the
# media its lessons show (one lesson per media file, the first). Each set is filtered by
# the course first, so only the course's passages are ranked; the wide rows (content)
# are read for the few that make the cut.
_COURSE_MEDIA = """
media AS (
    SELECT DISTINCT ON (media_id) media_id, lesson_id FROM ai.course_lessons
    WHERE course_id = :course_id AND media_id IS NOT NULL
    ORDER BY media_id, position
)
"""

_SELECT_PASSAGES = """
SELECT p.id, p.source, top.lesson_id, t.title AS lesson_title, p.media_id, p.content,
    p.start_seconds, p.end_seconds, top.rank
FROM top
JOIN ai.passages p ON p.id = top.id
LEFT JOIN ai.course_lessons t ON t.course_id = :course_id AND t.lesson_id = top.lesson_id
"""

_SEARCH = text(
    f"""
WITH q AS (
    SELECT replace(plainto_tsquery('{TS_CONFIG}', :query)::text, '&', '|')::tsquery AS query
),
{_COURSE_MEDIA},
hits AS (
    SELECT p.id, p.lesson_id, ts_rank(p.tsv, q.query) AS rank
    FROM ai.passages p, q
    WHERE p.course_id = :course_id AND p.tsv @@ q.query
    UNION ALL
    SELECT p.id, media.lesson_id, ts_rank(p.tsv, q.query) AS rank
    FROM ai.passages p JOIN media ON p.media_id = media.media_id, q
    WHERE p.source = 'transcript' AND p.tsv @@ q.query
),
top AS (
    SELECT id, lesson_id,
        rank * CASE WHEN lesson_id = :lesson_id THEN {SAME_LESSON_BOOST} ELSE 1 END AS rank
    FROM hits
    ORDER BY 3 DESC, id
    LIMIT :limit
)
{_SELECT_PASSAGES}
ORDER BY top.rank DESC, p.id
"""
).bindparams(
    bindparam("course_id", type_=Uuid()),
    bindparam("lesson_id", type_=Uuid()),
    bindparam("limit", type_=Integer()),
)

_IN_ORDER = text(
    f"""
WITH {_COURSE_MEDIA},
hits AS (
    SELECT p.id, p.lesson_id FROM ai.passages p WHERE p.course_id = :course_id
    UNION ALL
    SELECT p.id, media.lesson_id
    FROM ai.passages p JOIN media ON p.media_id = media.media_id
    WHERE p.source = 'transcript'
),
top AS (
    SELECT hits.id, hits.lesson_id, 0.0 AS rank, l.position, p.source, p.position AS part
    FROM hits
    JOIN ai.passages p ON p.id = hits.id
    LEFT JOIN ai.course_lessons l ON l.course_id = :course_id AND l.lesson_id = hits.lesson_id
    WHERE CAST(:lesson_id AS uuid) IS NULL OR hits.lesson_id = :lesson_id
    ORDER BY l.position NULLS LAST, p.source, p.position, hits.id
    LIMIT :limit
)
{_SELECT_PASSAGES}
ORDER BY top.position NULLS LAST, top.source, top.part, p.id
"""
).bindparams(
    bindparam("course_id", type_=Uuid()),
    bindparam("lesson_id", type_=Uuid()),
    bindparam("limit", type_=Integer()),
)


def _passage(row: Any) -> Passage:
    return Passage(
        id=row.id,
        source=row.source,
        lesson_id=row.lesson_id,
        lesson_title=row.lesson_title,
        media_id=row.media_id,
        content=row.content,
        start_seconds=row.start_seconds,
        end_seconds=row.end_seconds,
        rank=float(row.rank),
    )


async def search(
    session: AsyncSession,
    *,
    course_id: uuid.UUID,
    query: str,
    limit: int,
    lesson_id: uuid.UUID | None = None,
) -> list[Passage]:
    """The ``limit`` passages of the course that best match ``query`` (best first)."""
    if not query.strip():
        return []
    rows = await session.execute(
        _SEARCH,
        {"course_id": course_id, "lesson_id": lesson_id, "query": query[:2000], "limit": limit},
    )
    return [_passage(row) for row in rows]


async def in_course_order(
    session: AsyncSession,
    *,
    course_id: uuid.UUID,
    limit: int,
    lesson_id: uuid.UUID | None = None,
) -> list[Passage]:
    """Passages of the course (or one lesson of it) in reading order, for requests
    that name no topic (a quiz on a lesson)."""
    rows = await session.execute(
        _IN_ORDER, {"course_id": course_id, "lesson_id": lesson_id, "limit": limit}
    )
    return [_passage(row) for row in rows]


async def ground(
    session: AsyncSession,
    *,
    course_id: uuid.UUID,
    query: str | None,
    limit: int,
    lesson_id: uuid.UUID | None = None,
) -> list[Passage]:
    """Passages for an answer: the best matches of ``query``, else the lesson's text."""
    found = await search(
        session, course_id=course_id, query=query or "", limit=limit, lesson_id=lesson_id
    )
    if found:
        return found
    if query and lesson_id is None:
        return []  # a question the course does not cover: say so rather than guess
    return await in_course_order(session, course_id=course_id, limit=limit, lesson_id=lesson_id)
