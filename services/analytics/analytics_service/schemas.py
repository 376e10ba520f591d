"""Response models of the reports (JSON; the CSV forms are built from the same models)."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field


class Money(BaseModel):
    """Payments and refunds in one currency, integer minor units (1999 = 19.99)."""

    currency: str = Field(description="ISO 4217, lower case; 'xxx' when a refund's is unknown")
    payments: int = 0
    gross: int = Field(0, description="Sum of successful payments")
    refunds: int = 0
    refunded: int = Field(0, description="Sum of refunds")
    net: int = Field(0, description="gross - refunded")


class CourseMetrics(BaseModel):
    """What happened in the courses over a period (a day, or a whole range)."""

    enrollments: int = 0
    revocations: int = 0
    lesson_completions: int = 0
    course_completions: int = 0
    reviews: int = 0
    average_rating: float | None = Field(None, description="Of the period's new reviews")
    active_learners: int = Field(
        0, description="Distinct users who completed a lesson in the period"
    )
    revenue: list[Money] = Field(default_factory=list, description="One entry per currency")


class PlatformMetrics(CourseMetrics):
    new_users: int = 0
    subscriptions_activated: int = 0
    subscriptions_canceled: int = 0
    media_uploads: int = 0
    ai_requests: int = 0
    ai_tokens: int = 0
    ai_cost_micro_usd: int = Field(0, description="AI cost in micro-dollars (1 USD = 1,000,000)")


class CourseDay(CourseMetrics):
    date: dt.date


class PlatformDay(PlatformMetrics):
    date: dt.date


class CourseSummary(BaseModel):
    id: uuid.UUID
    title: str | None
    instructor_id: uuid.UUID
    is_published: bool
    currency: str


class _Ranged(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: dt.date = Field(alias="from", description="First day (UTC), included")
    to: dt.date = Field(description="Last day (UTC), included")


class CourseReport(_Ranged):
    course: CourseSummary
    totals: CourseMetrics
    days: list[CourseDay] = Field(description="Every day of the range, zeros included")


class InstructorCourse(BaseModel):
    course: CourseSummary
    totals: CourseMetrics


class InstructorReport(_Ranged):
    instructor_id: uuid.UUID
    totals: CourseMetrics = Field(description="Across all the instructor's courses")
    courses: list[InstructorCourse]


class PlatformReport(_Ranged):
    totals: PlatformMetrics
    days: list[PlatformDay] = Field(description="Every day of the range, zeros included")


class DailyCourse(CourseMetrics):
    course_id: uuid.UUID
    title: str | None = None
    instructor_id: uuid.UUID | None = None


class DailyReport(BaseModel):
    date: dt.date
    stored: bool = Field(description="True when this is the report the daily job stored")
    generated_at: dt.datetime | None = Field(None, description="When the job stored it")
    platform: PlatformMetrics
    courses: list[DailyCourse] = Field(description="Courses with any activity that day")
