"""A student's progress through a course."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from courses_service import progress
from courses_service.access import visible_course
from courses_service.api.courses import CourseRef
from courses_service.api.deps import CoursesContext, courses_context
from courses_service.schemas import Progress
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix="/api/v1/courses/{course_ref}", tags=["progress"])


@router.post("/lessons/{lesson_id}/complete", response_model=Progress)
async def complete_lesson(
    course_ref: CourseRef,
    lesson_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Progress:
    """Mark a lesson completed (enrolled students; idempotent); answers the progress."""
    async with ctx.unit_of_work() as session:
        course = await visible_course(session, course_ref, principal)
        return await progress.complete_lesson(session, course, lesson_id, principal.user_id)


@router.get("/progress", response_model=Progress)
async def read_progress(
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Progress:
    """The caller's progress in a course they may see (zero when never started)."""
    async with ctx.sessions() as session:
        course = await visible_course(session, course_ref, principal)
        return await progress.course_progress(session, course.id, principal.user_id)
