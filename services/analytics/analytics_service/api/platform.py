"""``GET /api/v1/analytics/platform`` and ``/reports/daily`` (admins)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from analytics_service.api.deps import (
    CSV_RESPONSE,
    PREFIX,
    AnalyticsContext,
    analytics_context,
    answer,
    report_range,
)
from analytics_service.csv_export import daily_report_csv, platform_report_csv
from analytics_service.daily_reports import daily_report, yesterday
from analytics_service.reports import DateRange, platform_report
from analytics_service.schemas import DailyReport, PlatformReport
from unpuzzle_common.auth import ADMIN, Principal, require_roles

router = APIRouter(prefix=PREFIX, tags=["analytics"])


@router.get("/platform", response_model=PlatformReport, responses=CSV_RESPONSE)
async def get_platform_report(
    request: Request,
    principal: Principal = Depends(require_roles(ADMIN)),
    rng: DateRange = Depends(report_range),
    ctx: AnalyticsContext = Depends(analytics_context),
) -> Response:
    """The whole platform: totals and every day of the range."""
    async with ctx.sessions() as session:
        report = await platform_report(session, rng)
    return answer(request, report, platform_report_csv, f"platform-{rng.start}-{rng.end}.csv")


@router.get("/reports/daily", response_model=DailyReport, responses=CSV_RESPONSE)
async def get_daily_report(
    request: Request,
    day: date | None = Query(None, alias="date", description="UTC day; default yesterday"),
    principal: Principal = Depends(require_roles(ADMIN)),
    ctx: AnalyticsContext = Depends(analytics_context),
) -> Response:
    """The report the daily job stored for that day, or the same report computed now."""
    day = day or yesterday()
    async with ctx.sessions() as session:
        report = await daily_report(session, day)
    return answer(request, report, daily_report_csv, f"daily-{day}.csv")
