"""Reading the catalog: search and browse (keyset pages), and the course document.

Search is PostgreSQL full text over title (weight A) and description (weight B),
ranked with ``ts_rank_cd``; the last word of the query also matches as a prefix, so
"pyth" finds "Python". Each sort is a keyset over a unique key, so pages never skip
or repeat a course while the catalog changes underneath:

=========  ==========================================  =========
sort       key                                         direction
=========  ==========================================  =========
newest     created_at, id                              desc
popular    enrollment_count, id                        desc
rating     rating_avg, rating_count, id                desc
price      price, id                                   asc
relevance  rank, id  (only with ``q``; its default)    desc
=========  ==========================================  =========
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
)

from courses_service.access import USER_VIEWER, viewer_kind, visibility
from courses_service.models import (
    ACTIVE,
    categories,
    courses,
    enrollments,
    lessons,
    sections,
    users,
)
from courses_service.schemas import CourseDetail, CourseSummary
from unpuzzle_common.auth import ADMIN, Principal
from unpuzzle_common.errors import ValidationFailed
from unpuzzle_common.pagination import Page, encode_cursor
from unpuzzle_common.readpool import CompiledQuery, Fetch, ReadPool, compile_query

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 12


@dataclass(frozen=True)
class CatalogQuery:
    """What a catalog request asks for (already validated at the edge)."""

    q: str | None = None
    category: uuid.UUID | str | None = None
    instructor_id: uuid.UUID | None = None
    price_min: int | None = None
    price_max: int | None = None
    free: bool | None = None
    sort: str | None = None
    limit: int = 20
    cursor: dict[str, Any] | None = None

    @property
    def words(self) -> list[str]:
        return _WORD.findall(self.q or "")[:MAX_QUERY_WORDS]

    @property
    def effective_sort(self) -> str:
        if self.sort == "relevance" and not self.words:
            return "newest"
        return self.sort or ("relevance" if self.words else "newest")


def ts_query_text(words: list[str]) -> str:
    """The ``to_tsquery`` text of the words ANDed, the last one also as a prefix ("pyth"
    finds Python).

    Words are ``\\w+`` runs, so no tsquery operator ever reaches PostgreSQL from a user.
    """
    terms = [f"'{w.lower()}'" for w in words]
    terms[-1] += ":*"
    return " & ".join(terms)


_ENGLISH = literal_column("'english'::regconfig")


def _summary_columns() -> list[Any]:
    return [
        courses.c.id,
        courses.c.slug,
        courses.c.title,
        courses.c.description,
        courses.c.price,
        courses.c.currency,
        courses.c.is_published,
        courses.c.published_at,
        courses.c.instructor_id,
        courses.c.category_id,
        courses.c.rating_avg,
        courses.c.rating_count,
        courses.c.enrollment_count,
        courses.c.lesson_count,
        courses.c.total_duration,
        courses.c.created_at,
        courses.c.updated_at,
        categories.c.name.label("category_name"),
        categories.c.slug.label("category_slug"),
        users.c.full_name.label("instructor_name"),
        courses.c.row_version,
    ]


def _summary_from(row: Any) -> dict[str, Any]:
    """A catalog item from a row of :func:`_summary_columns` (read by position: a page
    reads 20 rows of 20 columns, and by-name access on a Row was a third of that)."""
    (
        course_id, slug, title, description, price, currency, is_published, published_at,
        instructor_id, category_id, rating_avg, rating_count, enrollment_count,
        lesson_count, total_duration, created_at, updated_at,
        category_name, category_slug, instructor_name,
    ) = tuple(row)[:20]  # fmt: skip
    category = (
        {"id": category_id, "name": category_name, "slug": category_slug}
        if category_id is not None and category_name is not None
        else None
    )
    return {
        "id": course_id,
        "slug": slug,
        "title": title,
        "description": description,
        "price": price,
        "currency": currency,
        "is_published": is_published,
        "published_at": published_at,
        "category": category,
        "instructor": {"id": instructor_id, "full_name": instructor_name},
        "rating_avg": float(rating_avg),
        "rating_count": rating_count,
        "enrollment_count": enrollment_count,
        "lesson_count": lesson_count,
        "total_duration": total_duration,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def _joined() -> Any:
    return courses.outerjoin(categories, categories.c.id == courses.c.category_id).outerjoin(
        users, users.c.id == courses.c.instructor_id
    )


# -- keysets ------------------------------------------------------------------------------


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed.field("cursor", "not a valid cursor")


def _decode_key(sort: str, cursor: dict[str, Any]) -> tuple[Any, ...]:
    """The typed sort key inside a cursor of ``sort``; 422 for any other cursor."""
    if cursor.get("s") != sort or not isinstance(cursor.get("k"), list):
        raise _bad_cursor()
    key = cursor["k"]
    try:
        if sort == "newest" and len(key) == 2:
            return (datetime.fromisoformat(key[0]), uuid.UUID(key[1]))
        if sort == "popular" and len(key) == 2:
            return (int(key[0]), uuid.UUID(key[1]))
        if sort == "rating" and len(key) == 3:
            return (Decimal(str(key[0])), int(key[1]), uuid.UUID(key[2]))
        if sort == "price" and len(key) == 2:
            return (int(key[0]), uuid.UUID(key[1]))
        if sort == "relevance" and len(key) == 2:
            return (float(key[0]), uuid.UUID(key[1]))
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise _bad_cursor() from exc
    raise _bad_cursor()


def _sort_columns(sort: str, rank: ColumnElement[Any] | None) -> list[ColumnElement[Any]]:
    if sort == "newest":
        return [courses.c.created_at, courses.c.id]
    if sort == "popular":
        return [courses.c.enrollment_count, courses.c.id]
    if sort == "rating":
        return [courses.c.rating_avg, courses.c.rating_count, courses.c.id]
    if sort == "price":
        return [courses.c.price, courses.c.id]
    assert rank is not None
    return [rank, courses.c.id]


def _key_of(sort: str, row: tuple[Any, ...]) -> dict[str, Any]:
    if sort == "newest":
        key: list[Any] = [row[_AT["created_at"]].isoformat(), str(row[_AT["id"]])]
    elif sort == "popular":
        key = [row[_AT["enrollment_count"]], str(row[_AT["id"]])]
    elif sort == "rating":
        key = [str(row[_AT["rating_avg"]]), row[_AT["rating_count"]], str(row[_AT["id"]])]
    elif sort == "price":
        key = [row[_AT["price"]], str(row[_AT["id"]])]
    else:
        key = [row[_AT["rank"]], str(row[_AT["id"]])]
    return {"s": sort, "k": key}


# -- the catalog --------------------------------------------------------------------------
#
# The catalog query runs on the service's ReadPool (unpuzzle_common.readpool): it is
# built with Core as below, but compiled once per *shape* — which filters are present,
# the sort, whether there is a cursor or a search, who is asking — with named bind
# parameters for the values, and then run as prepared SQL text. Building and compiling
# it for every request cost more CPU than PostgreSQL spent answering it.


@dataclass(frozen=True)
class _Shape:
    viewer: str
    category: str | None  # "id", "slug" or None
    instructor: bool
    price_min: bool
    price_max: bool
    free: bool | None
    sort: str
    after: bool
    search: bool


#: Position of each selected column in a catalog row.
_AT = {
    name: i
    for i, name in enumerate([c.key for c in _summary_columns()] + ["rank"])  # type: ignore[attr-defined]
}


@lru_cache(maxsize=4096)  # more than the shapes there are (3,888)
def _catalog_query(shape: _Shape) -> CompiledQuery:
    where = [visibility(shape.viewer, bindparam("viewer_id", type_=courses.c.id.type))]
    if shape.category == "id":
        where.append(courses.c.category_id == bindparam("category"))
    elif shape.category == "slug":
        where.append(categories.c.slug == bindparam("category"))
    if shape.instructor:
        where.append(courses.c.instructor_id == bindparam("instructor_id"))
    if shape.price_min:
        where.append(courses.c.price >= bindparam("price_min"))
    if shape.price_max:
        where.append(courses.c.price <= bindparam("price_max"))
    if shape.free is True:
        where.append(courses.c.price == 0)
    elif shape.free is False:
        where.append(courses.c.price > 0)
    columns = _summary_columns()
    rank: ColumnElement[Any] | None = None
    if shape.search:
        tsq = func.to_tsquery(_ENGLISH, bindparam("tsquery", type_=String))
        where.append(courses.c.search_vector.op("@@")(tsq))
        rank = cast(func.ts_rank_cd(courses.c.search_vector, tsq), Float)
        columns.append(rank.label("rank"))
    order = _sort_columns(shape.sort, rank)
    descending = shape.sort != "price"
    if shape.after:
        # Typed like their columns, as the values were when bound inline: an out-of-range
        # key is refused by PostgreSQL (422), never compared as numeric.
        after = tuple_(*[bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(order)])
        where.append(tuple_(*order) < after if descending else tuple_(*order) > after)
    statement = (
        select(*columns)
        .select_from(_joined())
        .where(and_(*where))
        .order_by(*[c.desc() if descending else c.asc() for c in order])
        .limit(bindparam("limit", type_=Integer))
    )
    return compile_query("catalog", statement)


def _catalog_values(query: CatalogQuery, principal: Principal | None) -> tuple[_Shape, dict]:
    """The shape of ``query``'s statement and the values to run it with."""
    sort = query.effective_sort
    values: dict[str, Any] = {"limit": query.limit + 1}
    kind = viewer_kind(principal)
    if kind == USER_VIEWER:
        assert principal is not None
        values["viewer_id"] = principal.user_id
    category = None
    if isinstance(query.category, uuid.UUID):
        category, values["category"] = "id", query.category
    elif query.category:
        category, values["category"] = "slug", query.category.lower()
    for name in ("instructor_id", "price_min", "price_max"):
        if getattr(query, name) is not None:
            values[name] = getattr(query, name)
    words = query.words
    if words:
        values["tsquery"] = ts_query_text(words)
    if query.cursor is not None:
        for i, value in enumerate(_decode_key(sort, query.cursor)):
            values[f"after_{i}"] = value
    shape = _Shape(
        viewer=kind,
        category=category,
        instructor=query.instructor_id is not None,
        price_min=query.price_min is not None,
        price_max=query.price_max is not None,
        free=query.free,
        sort=sort,
        after=query.cursor is not None,
        search=bool(words),
    )
    return shape, values


async def search_catalog(
    reader: ReadPool, query: CatalogQuery, principal: Principal | None
) -> tuple[Page[CourseSummary], list[tuple[uuid.UUID, int]]]:
    """One page of the courses the caller may see, filtered, searched and sorted, and
    the (id, row version) of each course on it as read (what a cached page records)."""
    shape, values = _catalog_values(query, principal)
    rows = await reader.fetch(_catalog_query(shape), values)
    shown_rows = rows[: query.limit]
    items = [CourseSummary.model_validate(_summary_from(r)) for r in shown_rows]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = encode_cursor(_key_of(shape.sort, rows[query.limit - 1]))
    version = _AT["row_version"]
    shown = [(r[_AT["id"]], r[version]) for r in shown_rows]
    return Page[CourseSummary](items=items, next_cursor=next_cursor), shown


@lru_cache(maxsize=1)
def _extra_visibility_query() -> CompiledQuery:
    user = bindparam("user_id", type_=courses.c.id.type)
    unpublished = and_(courses.c.deleted_at.is_(None), not_(courses.c.is_published))
    own_draft = exists().where(unpublished, courses.c.instructor_id == user)
    enrolled_in_draft = exists().where(
        unpublished,
        enrollments.c.course_id == courses.c.id,
        enrollments.c.user_id == user,
        enrollments.c.status == ACTIVE,
    )
    return compile_query("catalog_extra_visibility", select(or_(own_draft, enrolled_in_draft)))


async def sees_only_public(reader: ReadPool, principal: Principal | None) -> bool:
    """Whether the caller's catalog is exactly the anonymous one (so it may be cached).

    True for anonymous callers and for signed-in ones who own no unpublished course
    and are enrolled in none (most students).
    """
    if principal is None:
        return True
    if principal.has_role(ADMIN):
        return False
    rows = await reader.fetch(_extra_visibility_query(), {"user_id": principal.user_id})
    return not rows[0][0]


# -- the course document ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _slug_query() -> CompiledQuery:
    return compile_query(
        "course_by_slug", select(courses.c.id).where(courses.c.slug == bindparam("slug"))
    )


async def course_id_for_slug(fetch: Fetch, slug: str) -> uuid.UUID | None:
    if len(slug) > courses.c.slug.type.length:
        return None
    rows = await fetch(_slug_query(), {"slug": slug.lower()})
    return rows[0][0] if rows else None


@lru_cache(maxsize=1)
def _course_queries() -> tuple[CompiledQuery, CompiledQuery]:
    course_id = bindparam("course_id", type_=courses.c.id.type)
    course = (
        select(*_summary_columns())
        .select_from(_joined())
        .where(courses.c.id == course_id, courses.c.deleted_at.is_(None))
    )
    # Every section with its lessons (a section without lessons comes as one row of NULLs).
    outline = (
        select(
            sections.c.id,
            sections.c.title,
            sections.c.position,
            lessons.c.id,
            lessons.c.title,
            lessons.c.position,
            lessons.c.duration_seconds,
            lessons.c.media_id,
            lessons.c.content,
        )
        .select_from(sections.outerjoin(lessons, lessons.c.section_id == sections.c.id))
        .where(sections.c.course_id == course_id)
        .order_by(sections.c.position, lessons.c.position)
    )
    return compile_query("course", course), compile_query("course_outline", outline)


async def course_document(fetch: Fetch, course_id: uuid.UUID) -> CourseDetail | None:
    """Everything about a live course, lesson contents included (callers filter it).

    ``fetch``: the service's ReadPool, or a session's (:func:`session_fetch`) when the
    answer must show the caller's own transaction.
    """
    course_query, outline_query = _course_queries()
    rows = await fetch(course_query, {"course_id": course_id})
    if not rows:
        return None
    document = _summary_from(rows[0])
    sections_out: list[dict[str, Any]] = []
    for section_id, title, position, *lesson in await fetch(
        outline_query, {"course_id": course_id}
    ):
        if not sections_out or sections_out[-1]["id"] != section_id:
            sections_out.append(
                {"id": section_id, "title": title, "position": position, "lessons": []}
            )
        lesson_id, lesson_title, lesson_position, duration, media_id, content = lesson
        if lesson_id is not None:
            sections_out[-1]["lessons"].append(
                {
                    "id": lesson_id,
                    "section_id": section_id,
                    "title": lesson_title,
                    "position": lesson_position,
                    "duration_seconds": duration,
                    "media_id": media_id,
                    "content": content,
                }
            )
    document["sections"] = sections_out
    return CourseDetail.model_validate(document)


def outline_only(document: dict[str, Any]) -> dict[str, Any]:
    """The document without lesson contents and media (for callers without access)."""
    for section in document["sections"]:
        for lesson in section["lessons"]:
            lesson["content"] = None
            lesson["media_id"] = None
    return document
