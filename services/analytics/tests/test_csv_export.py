"""Every report as CSV: a header row, a row per day (or course), money in minor units."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date

from analytics_service.csv_export import course_report_csv
from analytics_service.schemas import CourseDay, CourseMetrics, CourseReport, CourseSummary, Money

RANGE = {"from": "2026-03-01", "to": "2026-03-03"}
CSV = {"Accept": "text/csv"}


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def get_csv(reader, path, headers, **params):
    response = await reader.get(path, params=params or RANGE, headers={**headers, **CSV})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.text.endswith("\r\n") and "\n" not in response.text.replace("\r\n", "")
    return response.text


async def test_a_course_report_has_one_row_per_day(reader, scenario, make_caller):
    owner = make_caller("instructor", user_id=scenario.instructor)
    text = await get_csv(reader, f"/api/v1/analytics/courses/{scenario.course_a}", owner.headers)

    rows = parse(text)
    assert text.startswith(
        "date,course_id,course_title,enrollments,revocations,lesson_completions,"
        "course_completions,reviews,average_rating,active_learners,"
        "currency,payments,gross,refunds,refunded,net\r\n"
    )
    assert [r["date"] for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    day1, day2, _ = rows
    assert (day1["course_title"], day1["enrollments"], day1["active_learners"]) == (
        "Algebra",
        "3",
        "3",
    )
    assert (day1["currency"], day1["gross"], day1["net"]) == ("usd", "1999", "1999")
    assert (day2["average_rating"], day2["refunded"], day2["net"]) == ("4.5", "1999", "-1999")


async def test_a_platform_report_has_a_row_per_day_and_currency(reader, make_caller):
    text = await get_csv(reader, "/api/v1/analytics/platform", make_caller("admin").headers)

    rows = parse(text)
    assert [(r["date"], r["currency"]) for r in rows] == [
        (d, c) for d in ("2026-03-01", "2026-03-02", "2026-03-03") for c in ("eur", "usd")
    ]
    assert rows[0]["new_users"] == rows[1]["new_users"] == "2"  # counts repeat per currency
    assert [r["gross"] for r in rows if r["date"] == "2026-03-02"] == ["500", "0"]


async def test_an_instructor_report_has_a_row_per_course(reader, scenario, make_caller):
    owner = make_caller("instructor", user_id=scenario.instructor)
    rows = parse(await get_csv(reader, "/api/v1/analytics/instructors/me", owner.headers))

    assert [(r["course_id"], r["currency"], r["enrollments"]) for r in rows] == [
        (str(scenario.course_a), "usd", "3")
    ]
    assert (rows[0]["from"], rows[0]["to"], rows[0]["is_published"]) == (
        "2026-03-01",
        "2026-03-03",
        "true",
    )


async def test_a_daily_report_starts_with_the_platform_row(reader, scenario, make_caller):
    text = await get_csv(
        reader, "/api/v1/analytics/reports/daily", make_caller("admin").headers, date="2026-03-02"
    )

    rows = parse(text)
    assert [(r["scope"], r["course_id"], r["currency"]) for r in rows] == [
        ("platform", "", "eur"),
        ("platform", "", "usd"),
        ("course", str(scenario.course_a), "usd"),
        ("course", str(scenario.course_b), "eur"),
    ]
    assert (rows[0]["ai_tokens"], rows[2]["ai_tokens"], rows[2]["reviews"]) == ("80", "", "2")


def test_text_is_quoted_per_rfc_4180_and_formulas_are_defused():
    course = CourseSummary(
        id=uuid.uuid4(),
        title='=HYPERLINK("http://evil"), "quoted"\nline',
        instructor_id=uuid.uuid4(),
        is_published=True,
        currency="usd",
    )
    empty = CourseMetrics(revenue=[Money(currency="usd")])
    report = CourseReport(
        course=course,
        from_=date(2026, 3, 1),
        to=date(2026, 3, 1),
        totals=empty,
        days=[CourseDay(date=date(2026, 3, 1), **empty.model_dump())],
    )

    text = course_report_csv(report)

    assert '"\'=HYPERLINK(""http://evil""), ""quoted""\nline"' in text
    [row] = parse(text)
    assert row["course_title"] == '\'=HYPERLINK("http://evil"), "quoted"\nline'
