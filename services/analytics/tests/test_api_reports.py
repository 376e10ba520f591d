"""The reports over HTTP: who may read which, what they say, date ranges."""

from __future__ import annotations

import uuid

import pytest

RANGE = {"from": "2026-03-01", "to": "2026-03-03"}


@pytest.fixture
def loaded(reader, scenario):
    return scenario


@pytest.fixture
def as_(make_caller, scenario):
    """Headers of a caller: anonymous, student, instructor (not the owner), owner, admin."""

    def headers(who: str) -> dict[str, str]:
        if who == "anonymous":
            return {}
        if who == "owner":
            return make_caller("instructor", user_id=scenario.instructor).headers
        return make_caller(who).headers

    return headers


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("student", 404), ("instructor", 404), ("owner", 200), ("admin", 200)],
)
async def test_who_may_read_a_course_report(reader, loaded, as_, who, status):
    response = await reader.get(
        f"/api/v1/analytics/courses/{loaded.course_a}", params=RANGE, headers=as_(who)
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("student", 403), ("instructor", 200), ("owner", 200), ("admin", 200)],
)
async def test_who_may_read_an_instructor_report(reader, as_, who, status):
    response = await reader.get("/api/v1/analytics/instructors/me", headers=as_(who))
    assert response.status_code == status, response.text


@pytest.mark.parametrize("path", ["/api/v1/analytics/platform", "/api/v1/analytics/reports/daily"])
@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("student", 403), ("instructor", 403), ("owner", 403), ("admin", 200)],
)
async def test_only_admins_read_platform_and_daily_reports(reader, as_, path, who, status):
    response = await reader.get(path, headers=as_(who))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_course_is_not_found_even_for_an_admin(reader, as_):
    response = await reader.get(f"/api/v1/analytics/courses/{uuid.uuid4()}", headers=as_("admin"))
    assert response.status_code == 404


async def test_a_course_report_has_totals_and_every_day_of_the_range(reader, loaded, as_):
    response = await reader.get(
        f"/api/v1/analytics/courses/{loaded.course_a}", params=RANGE, headers=as_("owner")
    )

    report = response.json()
    assert (report["from"], report["to"]) == ("2026-03-01", "2026-03-03")
    assert report["course"]["title"] == "Algebra"
    totals = report["totals"]
    assert {k: totals[k] for k in ("enrollments", "revocations", "lesson_completions")} == {
        "enrollments": 3,
        "revocations": 1,
        "lesson_completions": 5,
    }
    # Distinct over the range: u1, u2, u3 (not 3 + 1 from the daily counts).
    assert (totals["active_learners"], totals["average_rating"]) == (3, 4.5)
    assert totals["revenue"] == [
        {"currency": "usd", "payments": 1, "gross": 1999, "refunds": 1, "refunded": 1999, "net": 0}
    ]
    assert [d["date"] for d in report["days"]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    empty_day = report["days"][2]
    assert (empty_day["enrollments"], empty_day["average_rating"]) == (0, None)
    assert empty_day["revenue"] == [
        {"currency": "usd", "payments": 0, "gross": 0, "refunds": 0, "refunded": 0, "net": 0}
    ]


async def test_an_instructor_report_sums_the_instructors_courses(reader, loaded, as_):
    response = await reader.get(
        "/api/v1/analytics/instructors/me", params=RANGE, headers=as_("owner")
    )

    report = response.json()
    assert [c["course"]["id"] for c in report["courses"]] == [str(loaded.course_a)]
    assert report["totals"] == report["courses"][0]["totals"]
    assert report["totals"]["enrollments"] == 3


async def test_an_instructor_without_courses_gets_an_empty_report(reader, as_):
    report = (
        await reader.get("/api/v1/analytics/instructors/me", headers=as_("instructor"))
    ).json()
    assert (report["courses"], report["totals"]["enrollments"], report["totals"]["revenue"]) == (
        [],
        0,
        [],
    )


async def test_the_platform_report_lists_money_per_currency(reader, as_):
    response = await reader.get("/api/v1/analytics/platform", params=RANGE, headers=as_("admin"))

    totals = response.json()["totals"]
    assert [(m["currency"], m["gross"], m["net"]) for m in totals["revenue"]] == [
        ("eur", 500, 500),
        ("usd", 1999, 0),
    ]
    assert (totals["new_users"], totals["active_learners"], totals["ai_cost_micro_usd"]) == (
        2,
        4,
        4000,
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-05", "to": "2026-03-01"}, "from"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
    ],
)
async def test_a_bad_date_range_is_a_422_problem(reader, loaded, as_, params, field):
    for path in (
        f"/api/v1/analytics/courses/{loaded.course_a}",
        "/api/v1/analytics/instructors/me",
        "/api/v1/analytics/platform",
    ):
        response = await reader.get(path, params=params, headers=as_("admin"))
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_a_year_is_the_longest_range(reader, as_):
    response = await reader.get(
        "/api/v1/analytics/platform",
        params={"from": "2025-01-01", "to": "2026-01-01"},  # 366 days
        headers=as_("admin"),
    )
    assert response.status_code == 200
    assert len(response.json()["days"]) == 366


async def test_the_default_range_is_the_last_30_days(reader, as_):
    days = (await reader.get("/api/v1/analytics/platform", headers=as_("admin"))).json()["days"]
    assert len(days) == 30


async def test_a_daily_report_of_a_day_that_does_not_exist_is_a_422(reader, as_):
    response = await reader.get(
        "/api/v1/analytics/reports/daily", params={"date": "2026-02-30"}, headers=as_("admin")
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["date"]
