"""Request and response bodies of the courses API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from courses_service.text import light_text, plain_text, rich_text
from unpuzzle_common.pagination import DEFAULT_LIMIT, MAX_LIMIT

#: Minor units of the currency (1999 = 19.99). Strict: floats and strings are refused.
Price = Annotated[StrictInt, Field(ge=0, le=99_999_999)]
#: Upper bound of the catalog's price filters: the largest value the price column holds.
MAX_PRICE_FILTER = 2**31 - 1
Position = Annotated[StrictInt, Field(ge=0, le=10_000)]
Seconds = Annotated[StrictInt, Field(ge=0, le=7 * 24 * 3600)]
Title = Annotated[str, Field(min_length=1, max_length=200)]

Sort = Literal["newest", "popular", "rating", "price", "relevance"]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _clean_title(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = plain_text(value)
    if not cleaned:
        raise ValueError("must contain text")
    return cleaned


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if len(lowered) != 3 or not lowered.isascii() or not lowered.isalpha():
        raise ValueError("must be an ISO 4217 code such as 'usd'")
    return lowered


# -- requests -----------------------------------------------------------------------------


class CategoryCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    slug: str | None = Field(
        default=None, min_length=1, max_length=120, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
    )
    description: str = Field(default="", max_length=2000)

    _clean_name = field_validator("name")(_clean_title)
    _clean_description = field_validator("description")(plain_text)


class CourseCreate(Strict):
    title: Title
    description: str = Field(default="", max_length=20_000)
    price: Price = 0
    currency: str = Field(default="usd", max_length=3)
    category_id: uuid.UUID | None = None

    _clean_title = field_validator("title")(_clean_title)
    _clean_description = field_validator("description")(rich_text)
    _currency = field_validator("currency")(_currency)


class CourseUpdate(Strict):
    """Absent fields stay as they are; ``category_id: null`` removes the category."""

    title: Title | None = None
    description: str | None = Field(default=None, max_length=20_000)
    price: Price | None = None
    currency: str | None = Field(default=None, max_length=3)
    category_id: uuid.UUID | None = None

    _clean_title = field_validator("title")(_clean_title)
    _currency = field_validator("currency")(_currency)

    @field_validator("description")
    @classmethod
    def _clean_description(cls, value: str | None) -> str | None:
        return None if value is None else rich_text(value)


class CatalogParams(BaseModel):
    """The query parameters of ``GET /api/v1/courses``.

    One model serves both places that read them: FastAPI (``Annotated[CatalogParams,
    Query()]``: the OpenAPI parameters and the 422 answers) and the pre-routing catalog
    middleware (``api/cached_catalog.py``), so both accept exactly the same requests.
    """

    q: str | None = Field(None, max_length=200, description="Full-text search.")
    category: str | None = Field(None, max_length=120, description="Category id or slug.")
    instructor_id: uuid.UUID | None = None
    price_min: int | None = Field(
        None, ge=0, le=MAX_PRICE_FILTER, description="Minor units, inclusive."
    )
    price_max: int | None = Field(
        None, ge=0, le=MAX_PRICE_FILTER, description="Minor units, inclusive."
    )
    free: bool | None = Field(None, description="true: free courses only; false: paid only.")
    sort: Sort | None = Field(
        None, description="newest (default), popular, rating, price; relevance with q."
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page (1-100).")
    cursor: str | None = Field(None, max_length=512, description="Opaque cursor from next_cursor.")


class SectionCreate(Strict):
    title: Title
    #: 0-based; appended at the end when absent (or beyond the end).
    position: Position | None = None

    _clean_title = field_validator("title")(_clean_title)


class SectionUpdate(Strict):
    title: Title | None = None
    position: Position | None = None

    _clean_title = field_validator("title")(_clean_title)


class LessonCreate(Strict):
    title: Title
    content: str = Field(default="", max_length=100_000)
    media_id: uuid.UUID | None = None
    #: When absent and the media was already processed, its duration is used.
    duration_seconds: Seconds | None = None
    position: Position | None = None

    _clean_title = field_validator("title")(_clean_title)
    _clean_content = field_validator("content")(rich_text)


class LessonUpdate(Strict):
    """``section_id`` moves the lesson to another section of the same course."""

    title: Title | None = None
    content: str | None = Field(default=None, max_length=100_000)
    media_id: uuid.UUID | None = None
    duration_seconds: Seconds | None = None
    position: Position | None = None
    section_id: uuid.UUID | None = None

    _clean_title = field_validator("title")(_clean_title)

    @field_validator("content")
    @classmethod
    def _clean_content(cls, value: str | None) -> str | None:
        return None if value is None else rich_text(value)


class ReviewCreate(Strict):
    rating: Annotated[StrictInt, Field(ge=1, le=5)]
    comment: str = Field(default="", max_length=5000)

    _clean_comment = field_validator("comment")(light_text)


# -- responses ----------------------------------------------------------------------------


class Category(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    description: str


class CategoryRef(BaseModel):
    id: uuid.UUID
    name: str
    slug: str


class UserRef(BaseModel):
    id: uuid.UUID
    #: From the users read model; null until the user's events have arrived.
    full_name: str | None


class CourseSummary(BaseModel):
    id: uuid.UUID
    slug: str
    title: str
    description: str
    price: int
    currency: str
    is_published: bool
    published_at: datetime | None
    category: CategoryRef | None
    instructor: UserRef
    rating_avg: float
    rating_count: int
    enrollment_count: int
    lesson_count: int
    #: Seconds.
    total_duration: int
    created_at: datetime
    updated_at: datetime


class Lesson(BaseModel):
    id: uuid.UUID
    section_id: uuid.UUID
    title: str
    position: int
    duration_seconds: int | None
    #: Null for callers who may see the outline only (not enrolled, not the instructor).
    media_id: uuid.UUID | None
    content: str | None


class Section(BaseModel):
    id: uuid.UUID
    title: str
    position: int
    lessons: list[Lesson]


class CourseDetail(CourseSummary):
    sections: list[Section]
    #: The caller has an active enrollment.
    is_enrolled: bool = False
    #: The caller may change the course (its instructor or an admin).
    can_edit: bool = False


class CourseRef(BaseModel):
    id: uuid.UUID
    slug: str
    title: str


class Enrollment(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    #: "free" or the id of the payment that granted it.
    source: str
    status: Literal["active", "revoked"]
    created_at: datetime
    revoked_at: datetime | None
    completed_at: datetime | None
    course: CourseRef | None = None


class Progress(BaseModel):
    course_id: uuid.UUID
    completed_lesson_ids: list[uuid.UUID]
    total_lessons: int
    #: 0-100, rounded down: 100 only when every lesson is completed.
    percent: int
    #: When every lesson was first completed (course.completed.v1), if ever.
    completed_at: datetime | None


class Review(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    user: UserRef
    rating: int
    comment: str
    created_at: datetime
