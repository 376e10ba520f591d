"""``GET /api/v1/analytics/courses/{id}``: a course's day series (its instructor, admins)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from analytics_service.api.deps import (
    CSV_RESPONSE,
    PREFIX,
    AnalyticsContext,
    analytics_context,
    answer,
    report_range,
)
from analytics_service.csv_export import course_report_csv
from analytics_service.reports import DateRange, course_report, readable_course
from analytics_service.schemas import CourseReport
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix=PREFIX, tags=["analytics"])


@router.get("/courses/{course_id}", response_model=CourseReport, responses=CSV_RESPONSE)
async def get_course_report(
    course_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(current_principal),
    rng: DateRange = Depends(report_range),
    ctx: AnalyticsContext = Depends(analytics_context),
) -> Response:
    """Totals and every day of the range. 404 unless the caller is its instructor or an admin."""
    async with ctx.sessions() as session:
        course = await readable_course(session, course_id, principal)
        report = await course_report(session, course, rng)
    filename = f"course-{course_id}-{rng.start}-{rng.end}.csv"
    return answer(request, report, course_report_csv, filename)
