"""What the routers share: the service's context, the date range, JSON-or-CSV answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics_service.csv_export import CSV_MEDIA_TYPE
from analytics_service.reports import DateRange, resolve_range
from analytics_service.settings import Settings

PREFIX = "/api/v1/analytics"

R = TypeVar("R", bound=BaseModel)

#: OpenAPI: every report can also be had as CSV.
CSV_RESPONSE = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "The report as JSON, or as CSV with `Accept: text/csv`.",
    }
}


@dataclass
class AnalyticsContext:
    """Everything the routes need, built once in the app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]


async def analytics_context(request: Request) -> AnalyticsContext:
    return request.app.state.analytics


def today() -> date:
    return datetime.now(UTC).date()


async def report_range(
    request: Request,
    start: date | None = Query(
        None, alias="from", description="First day (UTC, YYYY-MM-DD), included"
    ),
    end: date | None = Query(None, alias="to", description="Last day (UTC), included"),
) -> DateRange:
    """``?from=&to=``: default the last days up to today; 422 when reversed or too long."""
    settings = request.app.state.analytics.settings
    return resolve_range(
        start,
        end,
        today=today(),
        default_days=settings.report_default_days,
        max_days=settings.report_max_days,
    )


def wants_csv(request: Request) -> bool:
    """Whether the client asked for CSV (``Accept: text/csv``) rather than JSON."""
    accepted = [
        part.split(";")[0].strip().lower() for part in request.headers.get("accept", "").split(",")
    ]
    return "text/csv" in accepted


def answer(request: Request, report: R, to_csv: Callable[[R], str], filename: str) -> Response:
    """The report as CSV when asked for, else as JSON."""
    if wants_csv(request):
        return Response(
            to_csv(report),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")
