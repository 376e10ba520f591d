"""Building, finding, taking and reviewing a course, through the gateway."""

from __future__ import annotations

import base64
import json
import random
import string


def _word() -> str:
    """A made-up word no other course of the run has, for full-text search."""
    return "".join(random.choices(string.ascii_lowercase, k=12))


def _search(journeys, word: str, user=None) -> list[dict]:
    headers = user.headers if user else {}
    response = journeys.http.get("/api/v1/courses", params={"q": word}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_instructor_publishes_and_student_takes_and_reviews_a_course(
    journeys, problem, eventually, lesson_ids, bus
):
    admin, instructor = journeys.admin(), journeys.user("instructor")
    word = _word()

    category = journeys.http.post(
        "/api/v1/categories", json={"name": f"Botany {word}"}, headers=admin.headers
    )
    assert category.status_code == 201, category.text
    category_id = category.json()["id"]

    # The anonymous catalog is cached: an empty search result is now stored.
    assert _search(journeys, word) == []
    course = journeys.create_course(
        instructor,
        title=f"Photosynthesis {word}",
        description="How plants turn light into sugar.",
        category_id=category_id,
        lessons=[
            {"title": "Light", "content": "<p>Chlorophyll absorbs red and blue light.</p>"},
            {"title": "Sugar", "content": "<p>The Calvin cycle fixes carbon dioxide.</p>"},
        ],
    )
    assert course["is_published"] is True
    assert course["price"] == 0
    assert course["category"]["id"] == category_id
    first, second = lesson_ids(course)
    draft = journeys.create_course(instructor, title=f"Respiration {word}", publish=False)

    # The publish invalidated the cached page: anonymous readers find it within 2 s,
    # and never the draft.
    found = eventually(
        lambda: _assert_found(_search(journeys, word), course["id"]), timeout=2, interval=0.1
    )
    assert [item["id"] for item in found] == [course["id"]]  # not the draft
    assert found[0]["lesson_count"] == 2
    assert found[0]["category"]["id"] == category_id
    # Its instructor's catalog has the draft too (own drafts), still without caching it.
    assert {course["id"], draft["id"]} <= {c["id"] for c in _search(journeys, word, instructor)}

    student = journeys.user("student")
    assert draft["id"] not in [item["id"] for item in _search(journeys, word, student)]
    enrolled = journeys.enroll(student, course["id"])
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["course_id"] == course["id"]
    again = journeys.enroll(student, course["id"])
    assert again.status_code == 200, again.text  # idempotent: the existing enrollment
    assert again.json()["id"] == enrolled.json()["id"]

    mine = journeys.http.get("/api/v1/enrollments", headers=student.headers)
    assert mine.status_code == 200, mine.text
    assert [e["course"]["id"] for e in mine.json()["items"]] == [course["id"]]

    # Enrolled: the lesson bodies are visible now.
    detail = journeys.http.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert detail.status_code == 200, detail.text
    assert detail.json()["is_enrolled"] is True
    assert "Chlorophyll" in detail.json()["sections"][0]["lessons"][0]["content"]

    for lesson_id in (first, second):
        completed = journeys.http.post(
            f"/api/v1/courses/{course['id']}/lessons/{lesson_id}/complete",
            headers=student.headers,
        )
        assert completed.status_code == 200, completed.text
    progress = journeys.http.get(
        f"/api/v1/courses/{course['id']}/progress", headers=student.headers
    )
    assert progress.status_code == 200, progress.text
    assert progress.json()["percent"] == 100
    assert progress.json()["total_lessons"] == 2
    assert sorted(progress.json()["completed_lesson_ids"]) == sorted([first, second])
    assert progress.json()["completed_at"] is not None

    # The anonymous course document is cached before the review, and must not hide it.
    assert journeys.http.get(f"/api/v1/courses/{course['id']}").json()["rating_count"] == 0
    review = journeys.http.post(
        f"/api/v1/courses/{course['id']}/reviews",
        json={"rating": 5, "comment": "Clear and short."},
        headers=student.headers,
    )
    assert review.status_code == 201, review.text
    second_review = journeys.http.post(
        f"/api/v1/courses/{course['id']}/reviews",
        json={"rating": 1, "comment": "Changed my mind."},
        headers=student.headers,
    )
    problem(second_review, 409)

    def rated() -> dict:
        body = journeys.http.get(f"/api/v1/courses/{course['id']}").json()
        assert body["rating_count"] == 1, body
        return body

    public = eventually(rated, timeout=2)
    assert public["rating_avg"] == 5.0
    assert public["enrollment_count"] == 1
    reviews = journeys.http.get(f"/api/v1/courses/{course['id']}/reviews")
    assert [r["rating"] for r in reviews.json()["items"]] == [5]

    # What the journey told the other services, as they receive it.
    events = bus.wait_for(
        "courses",
        lambda e: e.data.get("course_id") == course["id"],
        count=6,  # published, enrolled, two lessons, course completed, reviewed
    )
    by_type: dict[str, list] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event.data)
    (published,) = by_type["course.published.v1"]
    assert [lesson["lesson_id"] for lesson in published["lessons"]] == [first, second]
    assert published["instructor_id"] == instructor.id
    assert published["title"] == course["title"]
    (enrollment,) = by_type["enrollment.created.v1"]
    assert (enrollment["user_id"], enrollment["source"]) == (student.id, "free")
    assert sorted(e["lesson_id"] for e in by_type["lesson.completed.v1"]) == sorted([first, second])
    assert len(by_type["course.completed.v1"]) == 1
    (reviewed,) = by_type["review.created.v1"]
    assert (reviewed["user_id"], reviewed["rating"]) == (student.id, 5)


def _assert_found(items: list[dict], course_id: str) -> list[dict]:
    assert course_id in [item["id"] for item in items], items
    return items


def test_paid_course_is_not_on_the_free_path(journeys, problem):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course = journeys.create_course(instructor, title=f"Mycology {_word()}", price=1999)

    body = problem(journeys.enroll(student, course["id"]), 402)
    assert body["course_id"] == course["id"]
    assert (body["price"], body["currency"]) == (1999, "usd")
    assert body["payment"]["href"] == "/api/v1/payments/intents"
    assert body["payment"]["body"] == {"course_id": course["id"]}
    mine = journeys.http.get("/api/v1/enrollments", headers=student.headers)
    assert mine.json()["items"] == []


def test_creating_a_course_again_with_the_same_idempotency_key_replays_it(journeys, problem):
    instructor = journeys.user("instructor")
    body = {"title": f"Ferns {_word()}", "price": 0}
    key = {**instructor.headers, "Idempotency-Key": _word()}
    first = journeys.http.post("/api/v1/courses", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = journeys.http.post("/api/v1/courses", json=body, headers=key)
    assert (again.status_code, again.json()["id"]) == (201, first.json()["id"])
    assert again.headers["idempotent-replayed"] == "true"
    problem(journeys.http.post("/api/v1/courses", json={**body, "price": 100}, headers=key), 422)


def test_an_unpublished_course_stays_with_its_students_only(journeys, problem, eventually):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    word = _word()
    course = journeys.create_course(instructor, title=f"Mosses {word}")
    assert journeys.enroll(student, course["id"]).status_code == 201
    assert _search(journeys, word)  # cached anonymously while published
    unpublished = journeys.http.post(
        f"/api/v1/courses/{course['id']}/unpublish", headers=instructor.headers
    )
    assert unpublished.status_code == 200, unpublished.text
    assert unpublished.json()["is_published"] is False

    def gone_from_the_catalog() -> None:
        assert _search(journeys, word) == []

    eventually(gone_from_the_catalog, timeout=2)
    problem(journeys.http.get(f"/api/v1/courses/{course['id']}"), 404)
    stranger = journeys.user("student")
    problem(journeys.http.get(f"/api/v1/courses/{course['id']}", headers=stranger.headers), 404)
    problem(journeys.enroll(stranger, course["id"]), 404)
    kept = journeys.http.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert kept.status_code == 200, kept.text
    assert kept.json()["is_enrolled"] is True
    assert [c["id"] for c in _search(journeys, word, student)] == [course["id"]]


def test_a_draft_is_invisible_to_students_and_to_anonymous_readers(journeys, problem):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    draft = journeys.create_course(instructor, title=f"Lichens {_word()}", publish=False)
    (lesson_id,) = [lesson["id"] for lesson in draft["sections"][0]["lessons"]]
    base = f"/api/v1/courses/{draft['id']}"

    for headers in (student.headers, {}):
        problem(journeys.http.get(base, headers=headers), 404)
        problem(journeys.http.get(f"/api/v1/courses/{draft['slug']}", headers=headers), 404)
        problem(journeys.http.get(f"{base}/reviews", headers=headers), 404)
    # Every route under a course the caller may not see answers 404, writes included.
    problem(journeys.http.get(f"{base}/progress", headers=student.headers), 404)
    problem(journeys.enroll(student, draft["id"]), 404)
    problem(
        journeys.http.post(f"{base}/lessons/{lesson_id}/complete", headers=student.headers), 404
    )
    problem(journeys.http.post(f"{base}/reviews", json={"rating": 4}, headers=student.headers), 404)
    problem(journeys.http.patch(base, json={"title": "Mine now"}, headers=student.headers), 404)


def test_admin_endpoints_refuse_students_and_instructors(journeys, problem):
    for role in ("student", "instructor"):
        user = journeys.user(role)
        response = journeys.http.post(
            "/api/v1/categories", json={"name": f"Forbidden {_word()}"}, headers=user.headers
        )
        problem(response, 403)
    student = journeys.user("student")
    response = journeys.http.post(
        "/api/v1/courses", json={"title": "Students do not teach"}, headers=student.headers
    )
    problem(response, 403)


def test_tampered_token_is_refused_on_catalog_and_write_routes(journeys, problem):
    instructor = journeys.user("instructor")
    header, payload, signature = instructor.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = {"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}

    # The catalog takes an optional token, but an invalid one is refused, not ignored.
    problem(journeys.http.get("/api/v1/courses", headers=forged), 401)
    problem(journeys.http.post("/api/v1/categories", json={"name": "x"}, headers=forged), 401)
    problem(journeys.http.post("/api/v1/courses", json={"title": "x"}, headers=forged), 401)
    problem(journeys.http.get("/api/v1/enrollments", headers=forged), 401)
    body = problem(journeys.http.get("/api/v1/enrollments"), 401)
    assert body["title"]
