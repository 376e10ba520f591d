"""The learning agents over HTTP: each answer's shape, its grounding, its checks."""

from __future__ import annotations

import json
import uuid

from unpuzzle_common.events.schemas import LessonCompleted


async def _agent(client, auth, user_id, agent: str, **body):
    return await client.post(f"/api/v1/ai/agents/{agent}", json=body, headers=auth(user_id))


async def test_hint_is_graded_and_grounded(client, auth, course):
    response = await _agent(
        client,
        auth,
        course.student_id,
        "hint",
        course_id=str(course.course_id),
        concept="chlorophyll",
    )
    assert response.status_code == 200, response.text
    hint = response.json()
    assert [h["level"] for h in hint["hints"]] == [1, 2, 3]
    assert hint["offline"] is True and hint["notice"]
    assert hint["prompt_version"] == "hint.v1"
    assert hint["citations"][0]["lesson_id"] == str(course.photosynthesis)
    assert hint["concept"] == "chlorophyll"


async def test_hint_without_a_concept_is_422(client, auth, course):
    response = await _agent(
        client, auth, course.student_id, "hint", course_id=str(course.course_id)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "concept"


async def test_quiz_has_choices_an_answer_key_and_explanations(client, auth, course):
    response = await _agent(
        client, auth, course.student_id, "quiz", course_id=str(course.course_id), count=2
    )
    assert response.status_code == 200, response.text
    questions = response.json()["questions"]
    assert len(questions) == 2
    for question in questions:
        assert 2 <= len(question["choices"]) <= 6
        assert 0 <= question["answer_index"] < len(question["choices"])
        assert question["explanation"]


async def test_reflection_gives_feedback_on_the_answer(client, auth, course):
    response = await _agent(
        client,
        auth,
        course.student_id,
        "reflection",
        course_id=str(course.course_id),
        concept="What happens in cellular respiration?",
        answer="Glucose is broken down in the mitochondria to release energy.",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["feedback"] and isinstance(body["strengths"], list)
    assert body["strengths"]  # it mentions ideas the material covers
    missing = await _agent(
        client, auth, course.student_id, "reflection", course_id=str(course.course_id)
    )
    assert missing.status_code == 422


async def test_path_suggests_the_lessons_not_completed_yet(client, auth, course, apply_event):
    await apply_event(
        LessonCompleted(
            user_id=course.student_id, course_id=course.course_id, lesson_id=course.photosynthesis
        )
    )
    response = await _agent(
        client, auth, course.student_id, "path", course_id=str(course.course_id)
    )
    assert response.status_code == 200, response.text
    path = response.json()
    assert path["completed_lesson_ids"] == [str(course.photosynthesis)]
    assert (path["total_lessons"], path["percent"]) == (3, 33)
    assert [s["lesson_id"] for s in path["next_lessons"]] == [
        str(course.respiration),
        str(course.transport),
    ]
    assert all(s["title"] and s["reason"] for s in path["next_lessons"])


async def test_path_on_a_topic_puts_the_lesson_covering_it_first(client, auth, course):
    response = await _agent(
        client,
        auth,
        course.student_id,
        "path",
        course_id=str(course.course_id),
        concept="xylem and transpiration",
    )
    assert response.json()["next_lessons"][0]["lesson_id"] == str(course.transport)


async def test_path_ignores_lessons_the_model_made_up(
    client, auth, course, ctx, openai_provider, fake_openai
):
    ctx.answering.provider = openai_provider()
    fake_openai.script.append(
        (
            "reply",
            json.dumps(
                {
                    "next_lessons": [
                        {"lesson_id": str(uuid.uuid4()), "reason": "made up"},
                        {"lesson_id": str(course.respiration), "reason": "Builds on glucose."},
                    ]
                }
            ),
        )
    )
    response = await _agent(
        client, auth, course.student_id, "path", course_id=str(course.course_id)
    )
    assert response.status_code == 200, response.text
    steps = response.json()["next_lessons"]
    assert [(s["lesson_id"], s["reason"]) for s in steps] == [
        (str(course.respiration), "Builds on glucose.")
    ]
    assert response.json()["offline"] is False


async def test_agents_refuse_students_not_enrolled(client, auth, course):
    response = await _agent(client, auth, uuid.uuid4(), "quiz", course_id=str(course.course_id))
    assert response.status_code == 403
