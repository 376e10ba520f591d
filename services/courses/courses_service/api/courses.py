"""Courses: the catalog, a course's page, and its instructor's changes to it.

Reads go through the Redis cache: anonymous catalog pages (and those of signed-in
callers whose catalog is the anonymous one) and course documents. Writes invalidate
what they changed before answering (see :mod:`courses_service.cache`).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from courses_service import catalog, courses
from courses_service.access import (
    COURSE_NOT_FOUND,
    can_edit,
    course_for_edit,
    has_full_access,
    is_enrolled,
    is_visible,
    parse_course_ref,
)
from courses_service.api.cached_catalog import (
    CATALOG_PARAMETERS,
    catalog_query,
    public_page,
)
from courses_service.api.deps import CoursesContext, courses_context, json_response
from courses_service.cache import catalog_key
from courses_service.schemas import (
    CatalogParams,
    CourseCreate,
    CourseDetail,
    CourseSummary,
    CourseUpdate,
)
from unpuzzle_common.auth import (
    ADMIN,
    INSTRUCTOR,
    Principal,
    current_principal,
    optional_principal,
    require_roles,
)
from unpuzzle_common.errors import NotFound
from unpuzzle_common.pagination import Page
from unpuzzle_common.readpool import session_fetch

router = APIRouter(prefix="/api/v1/courses", tags=["courses"])

#: A course is addressed by its id or its slug.
CourseRef = Annotated[
    str, Path(min_length=1, max_length=120, description="The course's id or its slug.")
]


# -- reading ------------------------------------------------------------------------------


@router.get("", response_model=Page[CourseSummary])
async def list_courses(
    params: Annotated[CatalogParams, Query()],
    principal: Principal | None = Depends(optional_principal),
    ctx: CoursesContext = Depends(courses_context),
    *,
    request: Request,
) -> Response:
    """Published courses, plus the caller's drafts and enrolled courses (all for admins)."""
    # Anonymous requests are mostly answered before routing (api/cached_catalog.py) with
    # the same steps; this handler answers the rest, invalid ones included.
    query = catalog_query(params)
    viewer = principal
    if principal is not None and await catalog.sees_only_public(ctx.reader, principal):
        viewer = None
    if viewer is not None:
        result, _ = await catalog.search_catalog(ctx.reader, query, viewer)
        return json_response(result)
    digest = catalog_key(request.scope["query_string"], CATALOG_PARAMETERS)
    popular = query.effective_sort == "popular"
    cached, key = await ctx.cache.catalog_page(digest, popular=popular)
    if cached is not None:
        return json_response(cached)
    return json_response(await public_page(ctx, query, key))


async def _document_by_id(ctx: CoursesContext, course_id: uuid.UUID) -> dict[str, Any] | None:
    """The live course's document, from the cache when it holds it."""
    cached, key = await ctx.cache.course_document(course_id)
    if cached is not None:
        return json.loads(cached)
    document = await catalog.course_document(ctx.reader.fetch, course_id)
    if document is None:
        return None
    raw = document.model_dump_json().encode()
    await ctx.cache.store_course_document(key, raw)
    return json.loads(raw)


async def _course_document(ctx: CoursesContext, ref: str) -> dict[str, Any] | None:
    """The live course's document by id or slug (slug → id is cached too)."""
    parsed = parse_course_ref(ref)
    if isinstance(parsed, uuid.UUID):
        return await _document_by_id(ctx, parsed)
    course_id = await ctx.cache.course_id_for_slug(parsed)
    if course_id is not None:
        document = await _document_by_id(ctx, course_id)
        if document is not None and document["slug"] == parsed:
            return document
    # Not cached, or a mapping gone stale (e.g. the catalog was reset): ask the database.
    course_id = await catalog.course_id_for_slug(ctx.reader.fetch, parsed)
    if course_id is None:
        return None
    await ctx.cache.remember_slug(parsed, course_id)
    return await _document_by_id(ctx, course_id)


def _presented(document: dict[str, Any], principal: Principal | None, enrolled: bool) -> Response:
    instructor_id = uuid.UUID(document["instructor"]["id"])
    document["is_enrolled"] = enrolled
    document["can_edit"] = can_edit(instructor_id, principal)
    if not has_full_access(instructor_id, principal, enrolled):
        catalog.outline_only(document)
    return json_response(json.dumps(document, separators=(",", ":")).encode())


@router.get("/{course_ref}", response_model=CourseDetail)
async def read_course(
    course_ref: CourseRef,
    principal: Principal | None = Depends(optional_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """A course with its ordered sections and lessons.

    Lesson contents and media ids are shown to enrolled students, the instructor and
    admins; everyone else who may see the course gets the outline.
    """
    document = await _course_document(ctx, course_ref)
    if document is None:
        raise NotFound(COURSE_NOT_FOUND)
    enrolled = False
    if principal is not None:
        enrolled = await is_enrolled(ctx.reader.fetch, principal.user_id, uuid.UUID(document["id"]))
    visible = is_visible(
        is_published=document["is_published"],
        instructor_id=uuid.UUID(document["instructor"]["id"]),
        principal=principal,
        enrolled=enrolled,
    )
    if not visible:
        raise NotFound(COURSE_NOT_FOUND)
    return _presented(document, principal, enrolled)


async def _fresh_detail(
    session: Any, course_id: uuid.UUID, principal: Principal
) -> tuple[dict[str, Any], bool]:
    """The document as this transaction sees it (never the cache), and the caller's enrollment."""
    document = await catalog.course_document(session_fetch(session), course_id)
    if document is None:
        raise NotFound(COURSE_NOT_FOUND)
    enrolled = await is_enrolled(session_fetch(session), principal.user_id, course_id)
    return document.model_dump(mode="json"), enrolled


# -- changing -----------------------------------------------------------------------------


@router.post("", response_model=CourseDetail, status_code=201)
async def create_course(
    body: CourseCreate,
    principal: Principal = Depends(require_roles(INSTRUCTOR, ADMIN)),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """A new draft (instructors and admins); its slug is made from the title."""
    async with ctx.unit_of_work() as session:
        row = await courses.create_course(
            session,
            instructor_id=principal.user_id,
            title=body.title,
            description=body.description,
            price=body.price,
            currency=body.currency,
            category_id=body.category_id,
        )
        document, enrolled = await _fresh_detail(session, row.id, principal)
    response = _presented(document, principal, enrolled)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/courses/{row.id}"
    return response


@router.patch("/{course_ref}", response_model=CourseDetail)
async def update_course(
    body: CourseUpdate,
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Change title, description, price, currency or category (instructor or admin).

    Absent fields stay as they are; ``category_id: null`` removes the category.
    """
    changes = body.model_dump(exclude_unset=True)
    for field in ("title", "price", "currency", "description"):
        if field in changes and changes[field] is None:
            del changes[field]
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await courses.update_course(session, course, changes)
        document, enrolled = await _fresh_detail(session, course.id, principal)
    return _presented(document, principal, enrolled)


@router.delete("/{course_ref}", status_code=204)
async def delete_course(
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Soft-delete a course (instructor or admin): it disappears for everyone."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await courses.delete_course(session, course)
    return Response(status_code=204)


@router.post("/{course_ref}/publish", response_model=CourseDetail)
async def publish_course(
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Publish (instructor or admin); 409 while the course has no lesson."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await courses.publish_course(session, course)
        document, enrolled = await _fresh_detail(session, course.id, principal)
    return _presented(document, principal, enrolled)


@router.post("/{course_ref}/unpublish", response_model=CourseDetail)
async def unpublish_course(
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Back to draft (instructor or admin); enrolled students keep their access."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await courses.unpublish_course(session, course)
        document, enrolled = await _fresh_detail(session, course.id, principal)
    return _presented(document, principal, enrolled)
