"""The scheduled jobs as commands: each safe to run twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from analytics_service.cli import main
from analytics_service.daily_reports import yesterday
from analytics_service.models import daily_reports
from unpuzzle_common.events import schemas as s


@pytest.fixture
def run_command(monkeypatch, settings):
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", settings.database_url)

    async def run(*args: str) -> None:
        await asyncio.to_thread(main, list(args))

    return run


async def stored_reports(sessions) -> list:
    async with sessions() as session:
        return list((await session.execute(select(daily_reports))).mappings())


async def test_the_daily_report_job_run_twice_stores_one_identical_report(
    deliver, scenario, sessions, run_command, capsys
):
    await deliver(scenario.stream)

    await run_command("daily-report", "--date", "2026-03-01")
    [first] = await stored_reports(sessions)
    await run_command("daily-report", "--date", "2026-03-01")
    [second] = await stored_reports(sessions)

    assert first["day"] == second["day"] == date(2026, 3, 1)
    assert first["report"] == second["report"]
    assert second["generated_at"] >= first["generated_at"]
    assert (
        "stored the daily report of 2026-03-01; courses with activity: 1" in capsys.readouterr().out
    )


async def test_the_daily_report_endpoint_answers_the_stored_report_else_computes_it(
    client, deliver, scenario, make_caller, run_command
):
    await deliver(scenario.stream)
    admin = make_caller("admin").headers
    computed = (
        await client.get("/api/v1/analytics/reports/daily?date=2026-03-01", headers=admin)
    ).json()

    await run_command("daily-report", "--date", "2026-03-01")
    stored = (
        await client.get("/api/v1/analytics/reports/daily?date=2026-03-01", headers=admin)
    ).json()

    assert (computed["stored"], computed["generated_at"]) == (False, None)
    assert stored["stored"] is True and stored["generated_at"] is not None
    without_provenance = {"stored", "generated_at"}
    assert {k: v for k, v in stored.items() if k not in without_provenance} == {
        k: v for k, v in computed.items() if k not in without_provenance
    }
    assert [c["course_id"] for c in stored["courses"]] == [str(scenario.course_a)]
    assert stored["platform"]["enrollments"] == 3


async def test_running_the_job_again_after_a_late_event_refreshes_the_report(
    deliver, make_envelope, sessions, run_command
):
    await run_command("daily-report", "--date", "2026-03-01")
    await deliver(
        [
            make_envelope(
                s.UserRegistered(user_id=uuid.uuid4(), email="l@x.io", full_name="L", roles=[]),
                "2026-03-01T22:00:00+00:00",
            )
        ]
    )

    await run_command("daily-report", "--date", "2026-03-01")

    [row] = await stored_reports(sessions)
    assert row["report"]["platform"]["new_users"] == 1


async def test_rebuild_run_twice_changes_nothing(deliver, scenario, snapshot, run_command):
    await deliver(scenario.stream)
    before = await snapshot()

    await run_command("rebuild")
    await run_command("rebuild")

    assert await snapshot() == before


def test_the_job_reports_on_yesterday_by_default():
    assert yesterday(datetime(2026, 3, 2, 0, 5, tzinfo=UTC)) == date(2026, 3, 1)
