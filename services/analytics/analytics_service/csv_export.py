"""The reports as CSV (RFC 4180), for people who open them in a spreadsheet.

One header row, then one row per day (course and platform reports), per course
(instructor and daily reports). Money is in integer minor units with a ``currency``
column; when a report spans several currencies each day (or course) has one row per
currency and the count columns repeat on each, so filter by currency before summing.
Text that a spreadsheet would run as a formula (a course title starting with ``=``,
``+``, ``-``, ``@``) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from analytics_service.schemas import (
    CourseMetrics,
    CourseReport,
    DailyReport,
    InstructorReport,
    Money,
    PlatformMetrics,
    PlatformReport,
)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

COUNT_COLUMNS = (
    "enrollments",
    "revocations",
    "lesson_completions",
    "course_completions",
    "reviews",
    "average_rating",
    "active_learners",
)
PLATFORM_ONLY_COLUMNS = (
    "new_users",
    "subscriptions_activated",
    "subscriptions_canceled",
    "media_uploads",
    "ai_requests",
    "ai_tokens",
    "ai_cost_micro_usd",
)
MONEY_COLUMNS = ("currency", "payments", "gross", "refunds", "refunded", "net")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text: CRLF line ends, fields quoted when they hold a comma, quote or newline."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _counts(metrics: CourseMetrics, columns: Sequence[str] = COUNT_COLUMNS) -> list[Any]:
    return [getattr(metrics, c) for c in columns]


def _money_rows(metrics: CourseMetrics) -> list[list[Any]]:
    """One money part per currency (a blank one when the period has no currency)."""
    entries: list[Money] = metrics.revenue or [Money(currency="")]
    return [[getattr(m, c) for c in MONEY_COLUMNS] for m in entries]


def course_report_csv(report: CourseReport) -> str:
    course = report.course
    header = ("date", "course_id", "course_title", *COUNT_COLUMNS, *MONEY_COLUMNS)
    return render(
        header,
        (
            [day.date.isoformat(), course.id, course.title, *_counts(day), *money]
            for day in report.days
            for money in _money_rows(day)
        ),
    )


def instructor_report_csv(report: InstructorReport) -> str:
    header = (
        "from",
        "to",
        "course_id",
        "course_title",
        "is_published",
        *COUNT_COLUMNS,
        *MONEY_COLUMNS,
    )
    period = [report.from_.isoformat(), report.to.isoformat()]
    return render(
        header,
        (
            [
                *period,
                item.course.id,
                item.course.title,
                str(item.course.is_published).lower(),
                *_counts(item.totals),
                *money,
            ]
            for item in report.courses
            for money in _money_rows(item.totals)
        ),
    )


def platform_report_csv(report: PlatformReport) -> str:
    header = ("date", *PLATFORM_ONLY_COLUMNS, *COUNT_COLUMNS, *MONEY_COLUMNS)
    return render(
        header,
        (
            [day.date.isoformat(), *_counts(day, PLATFORM_ONLY_COLUMNS), *_counts(day), *money]
            for day in report.days
            for money in _money_rows(day)
        ),
    )


def daily_report_csv(report: DailyReport) -> str:
    """The platform's row first (``scope`` platform), then one per course with activity."""
    header = (
        "date",
        "scope",
        "course_id",
        "course_title",
        "instructor_id",
        *PLATFORM_ONLY_COLUMNS,
        *COUNT_COLUMNS,
        *MONEY_COLUMNS,
    )
    day = report.date.isoformat()
    platform: PlatformMetrics = report.platform
    rows: list[list[Any]] = [
        [
            day,
            "platform",
            None,
            None,
            None,
            *_counts(platform, PLATFORM_ONLY_COLUMNS),
            *_counts(platform),
            *money,
        ]
        for money in _money_rows(platform)
    ]
    blank = [None] * len(PLATFORM_ONLY_COLUMNS)
    rows += [
        [day, "course", c.course_id, c.title, c.instructor_id, *blank, *_counts(c), *money]
        for c in report.courses
        for money in _money_rows(c)
    ]
    return render(header, rows)
