"""Reviews of a course: everyone who may see it reads them, enrolled students write one."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from courses_service import reviews
from courses_service.access import visible_course
from courses_service.api.courses import CourseRef
from courses_service.api.deps import CoursesContext, courses_context
from courses_service.schemas import Review, ReviewCreate
from unpuzzle_common.auth import Principal, current_principal, optional_principal
from unpuzzle_common.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/courses/{course_ref}/reviews", tags=["reviews"])


@router.get("", response_model=Page[Review])
async def list_reviews(
    course_ref: CourseRef,
    page: PageParams = Depends(page_params),
    principal: Principal | None = Depends(optional_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Page[Review]:
    """The course's reviews, newest first."""
    async with ctx.sessions() as session:
        course = await visible_course(session, course_ref, principal)
        return await reviews.list_reviews(session, course.id, page)


@router.post("", response_model=Review, status_code=201)
async def create_review(
    body: ReviewCreate,
    course_ref: CourseRef,
    principal: Principal = Depends(current_principal),
    ctx: CoursesContext = Depends(courses_context),
) -> Review:
    """Review a course you are enrolled in: rating 1-5 and a comment; 409 on a second one."""
    async with ctx.unit_of_work() as session:
        course = await visible_course(session, course_ref, principal)
        return await reviews.create_review(
            session, course, principal.user_id, rating=body.rating, comment=body.comment
        )
