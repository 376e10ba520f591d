"""``GET /api/v1/analytics/instructors/me``: the caller's courses, in total and each."""

from __future__ import annotations

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
from analytics_service.csv_export import instructor_report_csv
from analytics_service.reports import DateRange, instructor_report
from analytics_service.schemas import InstructorReport
from unpuzzle_common.auth import ADMIN, INSTRUCTOR, Principal, require_roles

router = APIRouter(prefix=PREFIX, tags=["analytics"])


@router.get("/instructors/me", response_model=InstructorReport, responses=CSV_RESPONSE)
async def get_my_instructor_report(
    request: Request,
    principal: Principal = Depends(require_roles(INSTRUCTOR, ADMIN)),
    rng: DateRange = Depends(report_range),
    ctx: AnalyticsContext = Depends(analytics_context),
) -> Response:
    """Totals across the caller's courses (published or not) and per course."""
    async with ctx.sessions() as session:
        report = await instructor_report(session, principal.user_id, rng)
    filename = f"instructor-{principal.user_id}-{rng.start}-{rng.end}.csv"
    return answer(request, report, instructor_report_csv, filename)
