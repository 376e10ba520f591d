"""The daily report: computed from the rollups and stored by a scheduled job.

``python -m analytics_service daily-report [--date D]`` (default: yesterday, UTC) stores
the day's report, replacing any earlier one: running it twice stores one report, and a
re-run after late events refreshes it. ``GET /reports/daily`` answers the stored report
when there is one (a snapshot as of ``generated_at``), else computes it on the spot.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.models import daily_reports
from analytics_service.reports import compute_daily_report
from analytics_service.schemas import DailyReport


def yesterday(now: datetime | None = None) -> date:
    """The last complete UTC day: what the nightly job reports on by default."""
    return ((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)).date()


async def generate_daily_report(session: AsyncSession, day: date) -> DailyReport:
    """Compute the day's report and store it (replacing an earlier one)."""
    report = await compute_daily_report(session, day)
    body = report.model_dump(mode="json", exclude={"stored", "generated_at"})
    stmt = insert(daily_reports).values(day=day, generated_at=func.now(), report=body)
    generated_at = (
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[daily_reports.c.day],
                set_={"generated_at": stmt.excluded.generated_at, "report": stmt.excluded.report},
            ).returning(daily_reports.c.generated_at)
        )
    ).scalar_one()
    return report.model_copy(update={"stored": True, "generated_at": generated_at})


async def stored_daily_report(session: AsyncSession, day: date) -> DailyReport | None:
    row = (await session.execute(select(daily_reports).where(daily_reports.c.day == day))).first()
    if row is None:
        return None
    return DailyReport.model_validate(
        {**row.report, "stored": True, "generated_at": row.generated_at}
    )


async def daily_report(session: AsyncSession, day: date) -> DailyReport:
    """The stored report of ``day`` if the job made one, else the report computed now."""
    return await stored_daily_report(session, day) or await compute_daily_report(session, day)
