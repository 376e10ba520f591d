"""Enrolling in free courses, and the caller's enrollments."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from courses_service import enrollments
from courses_service.access import visible_course
from courses_service.api.courses import CourseRef
from courses_service.api.deps import CoursesContext, courses_context, json_response
from courses_service.schemas import CourseRef as CourseRefOut
from courses_service.schemas import Enrollment
from unpuzzle_common.auth import Principal, current_principal
from unpuzzle_common.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1", tags=["enrollments"])


@router.post(
    "/courses/{course_ref}/enroll",
    response_model=Enrollment,
    status_code=201,
    responses={
        200: {"model": Enrollment, "description": "Already enrolled: the existing enrollment."},
        402: {"description": "A paid course: buy it through POST /api/v1/payments/intents."},
    },
)
async def enroll(
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Response:
    """Enroll in a free, published course: 201 when enrolled now, 200 when already enrolled."""
    async with ctx.unit_of_work() as session:
        course = await visible_course(session, course_ref, principal)
        row, created = await enrollments.enroll_free(
            session, course, principal.user_id, payment_path=ctx.settings.payment_intents_path
        )
    body = enrollments.enrollment_out(
        row, course=CourseRefOut(id=course.id, slug=course.slug, title=course.title)
    )
    return json_response(body, status_code=201 if created else 200)


@router.get("/enrollments", response_model=Page[Enrollment])
async def my_enrollments(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Page[Enrollment]:
    """The caller's active enrollments, newest first."""
    async with ctx.sessions() as session:
        return await enrollments.my_enrollments(session, principal.user_id, page)
