"""What instructors and admins read about a purchase: analytics fed by the saga's events."""

from __future__ import annotations

import csv
import io
import uuid

SAGA_WITHIN = 2.0  # DESIGN.md §3: effects that cross services show within 2 s
PRICE = 1999
CSV = {"Accept": "text/csv"}


def _report(journeys, user, path: str, **params) -> dict:
    response = journeys.http.get(f"/api/v1/analytics{path}", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _csv(journeys, user, path: str) -> list[dict[str, str]]:
    response = journeys.http.get(f"/api/v1/analytics{path}", headers={**user.headers, **CSV})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["content-disposition"].endswith('.csv"')
    assert response.text.endswith("\r\n")  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(response.text)))


def _money(**amounts: int) -> dict:
    """A revenue entry in usd (counts and minor units; zeros unless given)."""
    zero = dict.fromkeys(("payments", "gross", "refunds", "refunded", "net"), 0)
    return {"currency": "usd", **zero, **amounts}


def _usd(metrics: dict) -> dict:
    (usd,) = [money for money in metrics["revenue"] if money["currency"] == "usd"]
    return usd


def test_instructor_and_admin_read_a_purchase_and_its_refund(journeys, stripe, problem, eventually):
    instructor, rival = journeys.user("instructor"), journeys.user("instructor")
    student, admin = journeys.user("student"), journeys.admin()
    title = f"Bryology {uuid.uuid4().hex[:8]}"
    course = journeys.create_course(instructor, title=title, price=PRICE)
    course_id = course["id"]

    intent, _ = stripe.buy(student, course_id)
    payment_id = intent["payment_id"]

    def enrolled() -> None:
        mine = journeys.http.get("/api/v1/enrollments", headers=student.headers).json()
        assert [e["course_id"] for e in mine["items"]] == [course_id], mine

    eventually(enrolled, timeout=SAGA_WITHIN)

    # Within 2 s of the enrollment, the course's report counts it and its revenue.
    def counted() -> dict:
        report = _report(journeys, instructor, f"/courses/{course_id}")
        assert report["totals"]["enrollments"] == 1, report["totals"]
        assert report["totals"]["revenue"][0]["payments"] == 1, report["totals"]
        return report

    report = eventually(counted, timeout=SAGA_WITHIN)
    assert report["course"]["id"] == course_id
    assert report["course"]["instructor_id"] == instructor.id
    assert (report["course"]["title"], report["course"]["currency"]) == (title, "usd")
    totals = report["totals"]
    assert totals["revocations"] == 0
    assert totals["revenue"] == [
        {
            "currency": "usd",
            "payments": 1,
            "gross": PRICE,
            "refunds": 0,
            "refunded": 0,
            "net": PRICE,
        }
    ]
    assert len(report["days"]) == 30  # the default range, every day, zeros included
    assert report["days"][-1]["date"] == report["to"]
    assert sum(day["enrollments"] for day in report["days"]) == 1
    assert sum(_usd(day)["gross"] for day in report["days"]) == PRICE

    mine = _report(journeys, instructor, "/instructors/me")
    assert mine["instructor_id"] == instructor.id
    (item,) = mine["courses"]
    assert item["course"]["id"] == course_id
    assert (item["totals"]["enrollments"], _usd(item["totals"])["gross"]) == (1, PRICE)
    assert _usd(mine["totals"])["net"] == PRICE

    # The same reports as CSV: one header row, then a row per day (per course).
    rows = _csv(journeys, instructor, f"/courses/{course_id}")
    assert len(rows) == 30
    assert {"date", "course_id", "enrollments", "currency", "gross", "net"} <= set(rows[0])
    assert {row["course_id"] for row in rows} == {course_id}
    assert {row["currency"] for row in rows} == {"usd"}
    assert sum(int(row["enrollments"]) for row in rows) == 1
    assert sum(int(row["gross"]) for row in rows) == PRICE
    (course_row,) = _csv(journeys, instructor, "/instructors/me")
    assert (course_row["course_id"], course_row["course_title"]) == (course_id, title)
    assert (course_row["enrollments"], course_row["gross"]) == ("1", str(PRICE))

    # Nobody else reads the course's numbers; students have no instructor report.
    for outsider in (student, rival):
        problem(journeys.http.get(f"/api/v1/analytics/courses/{course_id}", **_as(outsider)), 404)
    problem(journeys.http.get("/api/v1/analytics/instructors/me", **_as(student)), 403)
    for user in (student, instructor):
        problem(journeys.http.get("/api/v1/analytics/platform", **_as(user)), 403)
    problem(journeys.http.get(f"/api/v1/analytics/courses/{course_id}"), 401)
    assert _report(journeys, rival, "/instructors/me")["courses"] == []
    bad_range = journeys.http.get(
        f"/api/v1/analytics/courses/{course_id}",
        params={"from": "2026-02-02", "to": "2026-02-01"},
        headers=instructor.headers,
    )
    assert problem(bad_range, 422)["errors"]

    # The admin reads the course and the whole platform.
    assert _report(journeys, admin, f"/courses/{course_id}")["totals"]["enrollments"] == 1
    platform = _report(journeys, admin, "/platform")
    assert platform["totals"]["enrollments"] >= 1
    assert platform["totals"]["new_users"] >= 3
    assert _usd(platform["totals"])["gross"] >= PRICE
    assert len(platform["days"]) == 30
    platform_rows = _csv(journeys, admin, "/platform")
    assert {"date", "new_users", "ai_requests", "enrollments", "currency", "net"} <= set(
        platform_rows[0]
    )
    daily = journeys.http.get("/api/v1/analytics/reports/daily", headers=admin.headers)
    assert daily.status_code == 200, daily.text

    # The buyer refunds: the report walks it back (gross kept, refunded, net zero).
    refunded = journeys.http.post(f"/api/v1/payments/{payment_id}/refund", headers=student.headers)
    assert (refunded.status_code, refunded.json()["status"]) == (200, "refunded"), refunded.text

    def walked_back() -> dict:
        totals = _report(journeys, instructor, f"/courses/{course_id}")["totals"]
        assert totals["revocations"] == 1, totals
        assert _usd(totals)["refunds"] == 1, totals
        return totals

    totals = eventually(walked_back, timeout=SAGA_WITHIN)
    assert totals["enrollments"] == 1
    assert totals["revenue"] == [
        {
            "currency": "usd",
            "payments": 1,
            "gross": PRICE,
            "refunds": 1,
            "refunded": PRICE,
            "net": 0,
        }
    ]
    assert _usd(_report(journeys, instructor, "/instructors/me")["totals"])["net"] == 0
    assert _usd(_report(journeys, admin, "/platform")["totals"])["refunded"] >= PRICE


def _as(user) -> dict:
    return {"headers": user.headers}
