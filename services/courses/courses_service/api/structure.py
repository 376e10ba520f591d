"""Sections and lessons of a course, changed by its instructor or an admin."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from courses_service import structure
from courses_service.access import course_for_edit
from courses_service.api.courses import CourseRef
from courses_service.api.deps import CoursesContext, courses_context
from courses_service.schemas import (
    Lesson,
    LessonCreate,
    LessonUpdate,
    Section,
    SectionCreate,
    SectionUpdate,
)
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix="/api/v1/courses/{course_ref}/sections", tags=["course structure"])


def _lesson_out(row: Any) -> Lesson:
    return Lesson.model_validate(row, from_attributes=True)


def _section_out(row: Any, lessons: list[Any]) -> Section:
    return Section(
        id=row.id,
        title=row.title,
        position=row.position,
        lessons=[_lesson_out(lesson) for lesson in lessons],
    )


@router.post("", response_model=Section, status_code=201)
async def add_section(
    body: SectionCreate,
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Section:
    """Add a section at ``position`` (0-based; appended when absent)."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        row = await structure.add_section(session, course, title=body.title, position=body.position)
    return _section_out(row, [])


@router.patch("/{section_id}", response_model=Section)
async def update_section(
    body: SectionUpdate,
    course_ref: CourseRef,
    section_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Section:
    """Rename and/or move a section; the sections in between shift by one."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        row = await structure.update_section(
            session, course, section_id, body.model_dump(exclude_unset=True)
        )
        lessons = await structure.section_lessons(session, row.id)
    return _section_out(row, lessons)


@router.delete("/{section_id}", status_code=204)
async def delete_section(
    course_ref: CourseRef,
    section_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Remove a section and its lessons; 409 if that would empty a published course."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await structure.delete_section(session, course, section_id)
    return Response(status_code=204)


@router.post("/{section_id}/lessons", response_model=Lesson, status_code=201)
async def add_lesson(
    body: LessonCreate,
    course_ref: CourseRef,
    section_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Lesson:
    """Add a lesson at ``position`` in the section (appended when absent)."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        row = await structure.add_lesson(session, course, section_id, body.model_dump())
    return _lesson_out(row)


@router.patch("/{section_id}/lessons/{lesson_id}", response_model=Lesson)
async def update_lesson(
    body: LessonUpdate,
    course_ref: CourseRef,
    section_id: uuid.UUID,
    lesson_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Lesson:
    """Change a lesson; ``position`` reorders it, ``section_id`` moves it to another section."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        row = await structure.update_lesson(
            session, course, section_id, lesson_id, body.model_dump(exclude_unset=True)
        )
    return _lesson_out(row)


@router.delete("/{section_id}/lessons/{lesson_id}", status_code=204)
async def delete_lesson(
    course_ref: CourseRef,
    section_id: uuid.UUID,
    lesson_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Remove a lesson; 409 if it is the last one of a published course."""
    async with ctx.unit_of_work() as session:
        course = await course_for_edit(session, course_ref, principal)
        await structure.delete_lesson(session, course, section_id, lesson_id)
    return Response(status_code=204)
