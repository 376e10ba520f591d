"""Asking a course's AI tutor, streamed through the gateway, grounded in its lessons."""

from __future__ import annotations

LEARNS_WITHIN = 10.0
LESSONS = [
    {
        "title": "Light",
        "content": "<p>Chlorophyll absorbs red and blue light. Green light is reflected, "
        "which is why leaves look green.</p>",
    },
    {
        "title": "Water",
        "content": "<p>Roots take up water from the soil. Stomata let water vapour leave "
        "the leaf.</p>",
    },
]
QUESTION = "Why do leaves look green?"


def test_enrolled_student_gets_a_streamed_grounded_answer(journeys, problem, eventually, bus):
    instructor = journeys.user("instructor")
    course = journeys.create_course(instructor, title="Plant physiology", lessons=LESSONS)
    light_lesson = course["sections"][0]["lessons"][0]["id"]
    student, outsider = journeys.user("student"), journeys.user("student")
    assert journeys.enroll(student, course["id"]).status_code == 201

    # ai learns the course, its lesson text and the enrollment from events.
    session_id = journeys.tutor_session(student, course["id"], timeout=LEARNS_WITHIN)
    asked = 0

    def grounded_answer() -> list[tuple[str, dict]]:
        nonlocal asked
        asked += 1
        events = journeys.ask_streamed(student, session_id, QUESTION)
        assert events and events[-1][0] == "done", events[-3:]
        assert events[-1][1]["citations"], "not grounded yet"
        return events

    events = eventually(grounded_answer, timeout=LEARNS_WITHIN, interval=0.5)
    kinds = [kind for kind, _ in events]
    assert kinds.count("token") > 1
    assert set(kinds[:-1]) == {"token"}
    done = events[-1][1]
    assert done["role"] == "assistant"
    assert done["status"] == "complete"
    assert "".join(data["delta"] for _, data in events[:-1]) == done["content"]
    assert "Green light is reflected" in done["content"]
    assert light_lesson in [c["lesson_id"] for c in done["citations"]]

    stored = journeys.http.get(
        f"/api/v1/ai/sessions/{session_id}/messages", headers=student.headers
    )
    assert stored.status_code == 200, stored.text
    messages = stored.json()["items"]
    assert [m["role"] for m in messages][-2:] == ["user", "assistant"]
    assert messages[-2]["content"] == QUESTION
    answer = messages[-1]
    assert (answer["id"], answer["content"]) == (done["id"], done["content"])
    cited = {(c["source"], c["lesson_id"]) for c in answer["citations"]}
    assert ("lesson", light_lesson) in cited
    lessons = {lesson["id"] for lesson in course["sections"][0]["lessons"]}
    assert {lesson_id for _, lesson_id in cited} <= lessons

    # The whole answer without streaming: 201 with the message.
    whole = journeys.http.post(
        f"/api/v1/ai/sessions/{session_id}/messages",
        json={"content": "What do roots take up?"},
        headers=student.headers,
    )
    asked += 1
    assert whole.status_code == 201, whole.text
    assert "water" in whole.json()["content"].lower()

    usage = journeys.http.get("/api/v1/ai/usage", headers=student.headers)
    assert usage.status_code == 200, usage.text
    assert usage.json()["requests_today"] == asked
    assert usage.json()["tokens_today"] > 0
    assert usage.json()["daily_limit"] >= asked

    # Not enrolled: the tutor of a published course is refused (403: enroll first),
    # and another student's session does not exist for them.
    refused = journeys.http.post(
        "/api/v1/ai/sessions",
        json={"course_id": course["id"], "session_type": "chat"},
        headers=outsider.headers,
    )
    problem(refused, 403)
    base = f"/api/v1/ai/sessions/{session_id}/messages"
    problem(journeys.http.get(base, headers=outsider.headers), 404)
    problem(journeys.http.post(base, json={"content": "hi"}, headers=outsider.headers), 404)
    outsider_usage = journeys.http.get("/api/v1/ai/usage", headers=outsider.headers).json()
    assert outsider_usage["requests_today"] == 0

    recorded = bus.wait_for("ai", lambda e: e.data["user_id"] == student.id, count=asked)
    assert len(recorded) == asked
    assert {e.data["agent"] for e in recorded} == {"chat"}


def test_tutor_of_a_draft_course_does_not_exist(journeys, problem):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    draft = journeys.create_course(instructor, title="Unreleased", lessons=LESSONS, publish=False)
    response = journeys.http.post(
        "/api/v1/ai/sessions",
        json={"course_id": draft["id"], "session_type": "chat"},
        headers=student.headers,
    )
    problem(response, 404)
    problem(journeys.http.get("/api/v1/ai/usage"), 401)


def test_agents_answer_until_the_daily_limit_refuses(journeys, problem, eventually, lesson_ids):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course = journeys.create_course(instructor, title="Leaves", lessons=LESSONS)
    assert journeys.enroll(student, course["id"]).status_code == 201
    session_id = journeys.tutor_session(student, course["id"], timeout=LEARNS_WITHIN)

    def agent(name: str, **body) -> dict:
        response = journeys.http.post(
            f"/api/v1/ai/agents/{name}",
            json={"course_id": course["id"], **body},
            headers=student.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["agent"] == name
        return response.json()

    assert agent("hint", concept="chlorophyll")["hints"][0]["level"] == 1
    questions = agent("quiz", count=2)["questions"]
    assert questions and all(0 <= q["answer_index"] < len(q["choices"]) for q in questions)
    assert "feedback" in agent("reflection", concept="Why green?", answer="Green is reflected")
    path = agent("path")
    assert path["total_lessons"] == 2
    assert path["next_lessons"][0]["lesson_id"] == lesson_ids(course)[0]

    usage = journeys.http.get("/api/v1/ai/usage", headers=student.headers).json()
    assert usage["requests_today"] == 4
    for _ in range(usage["daily_limit"] - usage["requests_today"]):
        agent("hint", concept="water")

    # Over the limit: refused before any stream starts, with the time to wait.
    refused = journeys.http.post(
        f"/api/v1/ai/sessions/{session_id}/messages",
        json={"content": QUESTION},
        headers={**student.headers, "Accept": "text/event-stream"},
    )
    body = problem(refused, 429)
    assert int(refused.headers["retry-after"]) > 0
    assert body["requests_today"] == body["daily_limit"]
    problem(
        journeys.http.post(
            "/api/v1/ai/agents/hint",
            json={"course_id": course["id"], "concept": "light"},
            headers=student.headers,
        ),
        429,
    )
    usage = journeys.http.get("/api/v1/ai/usage", headers=student.headers).json()
    assert usage["requests_today"] == usage["daily_limit"]


def test_tutor_of_a_deleted_course_stops_answering(journeys, eventually):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course = journeys.create_course(instructor, title="Withdrawn", lessons=LESSONS)
    assert journeys.enroll(student, course["id"]).status_code == 201
    session_id = journeys.tutor_session(student, course["id"], timeout=LEARNS_WITHIN)

    deleted = journeys.http.delete(f"/api/v1/courses/{course['id']}", headers=instructor.headers)
    assert deleted.status_code == 204, deleted.text
    gone = journeys.http.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert gone.status_code == 404  # courses: a deleted course is gone for everyone

    def refused() -> None:
        response = journeys.http.post(
            f"/api/v1/ai/sessions/{session_id}/messages",
            json={"content": QUESTION},
            headers=student.headers,
        )
        assert response.status_code == 404, response.text[:300]

    eventually(refused, timeout=2, interval=0.5)


def test_offline_quiz_on_a_short_lesson_is_not_a_bad_gateway(journeys, eventually):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course = journeys.create_course(
        instructor,
        title="Cells",
        lessons=[{"title": "ATP", "content": "<p>Mitochondria make ATP.</p>"}],
    )
    assert journeys.enroll(student, course["id"]).status_code == 201
    journeys.tutor_session(student, course["id"], timeout=LEARNS_WITHIN)
    response = journeys.http.post(
        "/api/v1/ai/agents/quiz", json={"course_id": course["id"]}, headers=student.headers
    )
    assert response.status_code < 500, response.text
