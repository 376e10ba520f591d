"""The offline provider answers usefully from the passages, and says it is offline."""

from __future__ import annotations

import json
import uuid

from ai_service.outputs import HintOutput, PathOutput, QuizOutput, ReflectionOutput
from ai_service.providers.base import ProviderRequest
from ai_service.providers.offline import OfflineProvider
from ai_service.retrieval import Passage

LESSON = uuid.uuid4()


def passage(pid: int, content: str, **extra) -> Passage:
    values = {
        "id": pid,
        "source": "lesson",
        "lesson_id": LESSON,
        "lesson_title": "Photosynthesis",
        "media_id": None,
        "content": content,
        "start_seconds": None,
        "end_seconds": None,
    }
    values.update(extra)
    return Passage(**values)


PASSAGES = [
    passage(
        1,
        "Photosynthesis turns light energy into chemical energy. It takes place in the "
        "chloroplasts, which contain the green pigment chlorophyll.",
    ),
    passage(
        2,
        "Cellular respiration releases energy stored in glucose inside the mitochondria.",
        lesson_title="Respiration",
    ),
    passage(
        3,
        "Xylem vessels carry water from the roots. Phloem tissue moves sugars around.",
        source="transcript",
        start_seconds=65.0,
        end_seconds=80.0,
        lesson_title="Transport",
    ),
]


def request(task, question="", **inputs) -> ProviderRequest:
    return ProviderRequest(
        task=task, messages=[], passages=PASSAGES, question=question, inputs=inputs
    )


async def test_chat_quotes_the_matching_sentence_and_says_it_is_offline():
    completion = await OfflineProvider().complete(request("chat", "Where is chlorophyll?"))
    assert completion.offline and completion.notice
    assert "Offline" in completion.text
    assert "chloroplasts" in completion.text and "[1]" in completion.text


async def test_hints_climb_from_a_nudge_to_the_leading_sentence():
    completion = await OfflineProvider().complete(request("hint", "chlorophyll"))
    hints = HintOutput.model_validate_json(completion.text).hints
    assert [h.level for h in hints] == [1, 2, 3]
    assert "Photosynthesis" in hints[0].text and "chloroplasts" not in hints[0].text
    assert "Photosynthesis turns light energy" in hints[1].text
    assert "chlorophyll" in hints[2].text


async def test_quiz_is_cloze_questions_with_distractors_from_other_passages():
    completion = await OfflineProvider().complete(request("quiz", count=2))
    quiz = QuizOutput.model_validate_json(completion.text)
    assert len(quiz.questions) == 2
    for question in quiz.questions:
        assert "_____" in question.question
        answer = question.choices[question.answer_index]
        assert answer not in question.question
        assert len(question.choices) == 4
        assert answer in question.explanation


async def test_quiz_uses_short_sentences_when_the_lessons_are_short():
    short = [
        passage(1, "Mitochondria make ATP."),
        passage(2, "Chloroplasts capture sunlight.", lesson_title="Light"),
    ]
    request_ = ProviderRequest(task="quiz", messages=[], passages=short, question="", inputs={})
    quiz = QuizOutput.model_validate_json((await OfflineProvider().complete(request_)).text)
    assert quiz.questions and "_____" in quiz.questions[0].question


async def test_quiz_without_material_is_a_clear_422_not_a_bad_gateway():
    import pytest

    from ai_service.providers.offline import NotEnoughMaterial

    lone = [passage(1, "ATP.")]
    request_ = ProviderRequest(task="quiz", messages=[], passages=lone, question="", inputs={})
    with pytest.raises(NotEnoughMaterial) as caught:
        await OfflineProvider().complete(request_)
    assert caught.value.status == 422


async def test_reflection_names_what_the_answer_covers_and_misses():
    completion = await OfflineProvider().complete(
        request("reflection", "photosynthesis", answer="Plants use light energy in chloroplasts.")
    )
    reflection = ReflectionOutput.model_validate_json(completion.text)
    assert reflection.strengths and reflection.improvements
    assert 0 < (reflection.score or 0) < 100


async def test_path_prefers_lessons_on_the_topic_then_course_order():
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    completion = await OfflineProvider().complete(
        request(
            "path",
            "transport",
            candidates=[
                {"lesson_id": first, "title": "A", "position": 0},
                {"lesson_id": second, "title": "B", "position": 1},
                {"lesson_id": third, "title": "C", "position": 2},
            ],
            relevant_lesson_ids=[third],
        )
    )
    path = PathOutput.model_validate_json(completion.text)
    assert [str(s.lesson_id) for s in path.next_lessons] == [third, first, second]


async def test_stream_yields_the_same_answer_in_pieces():
    provider = OfflineProvider()
    pieces = [d.text async for d in provider.stream(request("chat", "chlorophyll"))]
    whole = await provider.complete(request("chat", "chlorophyll"))
    assert len(pieces) > 3 and "".join(pieces) == whole.text


async def test_without_passages_it_says_the_course_does_not_cover_it():
    empty = ProviderRequest(task="hint", messages=[], passages=[], question="gravity")
    hints = json.loads((await OfflineProvider().complete(empty)).text)["hints"]
    assert len(hints) == 1 and "could not find" in hints[0]["text"]
