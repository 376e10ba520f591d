"""The whole platform on one course, through the gateway URL only.

An instructor signs up, uploads a lesson video in chunks (media transcribes it through
the stack's fake OpenAI, which reads what the audio "says" from its ``comment`` tag),
builds and publishes a paid course on it; a student finds the course, buys it
(intent, payment at Stripe, signed webhook), watches the video through its signed
URL, completes every lesson, asks the AI tutor, whose answers quote the transcript
and cite the video's lesson, and reviews the course; the instructor's analytics
count all of it; a refund walks it back. Each step waits for the previous one's
events, so the order is the point: one test, not several.
"""

from __future__ import annotations

import math
import random
import string
import subprocess
from pathlib import Path

import httpx
import pytest

#: What the lecture says: the fake OpenAI returns the audio's comment tag as its transcript.
SENTENCE = "the mitochondria is the powerhouse of the cell because of ATP synthase"
QUESTION = "What makes the mitochondria the powerhouse of the cell?"
PRICE = 2900
SAGA_WITHIN = 2.0  # DESIGN.md §3: effects that cross services show within 2 s
PROCESSED_WITHIN = 30.0  # ffprobe, thumbnail, audio extraction and transcription
LEARNS_WITHIN = 10.0  # ai: the course, the enrollment and the transcript, by events
VIDEO_LESSON = {
    "title": "Inside the organelle",
    # No word of the question: whatever grounds the tutor's answer is the transcript.
    "content": "<p>Watch the video, then try the exercise below.</p>",
}
TEXT_LESSON = {"title": "Enzymes", "content": "<p>Enzymes lower the activation energy.</p>"}


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-second lecture with a sound track, over one 8 MiB chunk: lossless x264 of a
    noisy picture (about 11 MB). Its ``comment`` tag is what the lecturer says."""
    path = tmp_path_factory.mktemp("full-journey") / "mitochondria.mp4"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    command += ["-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10"]
    command += ["-f", "lavfi", "-i", "sine=frequency=220:duration=2"]
    command += ["-vf", "scale=640:480,noise=alls=100:allf=t+u"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"]
    command += ["-c:a", "aac", "-shortest", "-metadata", f"comment={SENTENCE}", str(path)]
    subprocess.run(command, check=True, timeout=120, capture_output=True)
    return path


def _get(journeys, user, path: str, **params) -> dict:
    response = journeys.http.get(path, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _lessons(journeys, user, course_id: str) -> list[dict]:
    detail = _get(journeys, user, f"/api/v1/courses/{course_id}")
    return [lesson for section in detail["sections"] for lesson in section["lessons"]]


def _money(**amounts: int) -> dict:
    """A usd revenue entry of an analytics report (zeros unless given)."""
    zero = dict.fromkeys(("payments", "gross", "refunds", "refunded", "net"), 0)
    return {"currency": "usd", **zero, **amounts}


def _transcript_citation(citations: list[dict]) -> dict:
    cited = [c for c in citations if c["source"] == "transcript"]
    assert cited, f"no transcript cited yet: {citations}"
    return cited[0]


def test_a_paid_video_course_from_upload_to_refund(
    journeys, stripe, problem, eventually, bus, lecture
):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    video = lecture.read_bytes()
    word = "".join(random.choices(string.ascii_lowercase, k=12))  # the course's search term

    # -- 1. The instructor uploads the lecture in chunks; media processes and transcribes it.
    upload, completed = journeys.upload_in_chunks(instructor, lecture)
    assert upload["total_chunks"] == math.ceil(len(video) / upload["chunk_size"]) >= 2
    assert (completed["filename"], completed["size"]) == (lecture.name, len(video))
    media_id = completed["id"]
    media = journeys.processed_media(instructor, media_id, timeout=PROCESSED_WITHIN)
    assert (media["transcript"], media["has_transcript"]) == (SENTENCE, True)
    assert "transcript_error" not in media["metadata"]
    assert media["duration"] == pytest.approx(2.0, abs=0.2)
    assert (media["metadata"]["width"], media["metadata"]["height"]) == (640, 480)
    (processed,) = bus.wait_for(
        "media", lambda e: e.type == "media.processed.v1" and e.data["media_id"] == media_id
    )
    assert processed.data["transcript"] == SENTENCE

    # -- 2. ... builds a paid course on it and publishes it.
    course = journeys.create_course(
        instructor,
        title=f"Cell biology {word}",
        description="Where a cell's energy comes from.",
        price=PRICE,
        lessons=[{**VIDEO_LESSON, "media_id": media_id}, TEXT_LESSON],
    )
    course_id = course["id"]
    assert (course["is_published"], course["price"], course["currency"]) == (True, PRICE, "usd")
    video_lesson, text_lesson = [lesson["id"] for lesson in course["sections"][0]["lessons"]]
    assert course["sections"][0]["lessons"][0]["media_id"] == media_id

    # -- 3. A student finds it; before paying, only the outline shows and the video is hidden.
    def found() -> dict:
        items = _get(journeys, student, "/api/v1/courses", q=word)["items"]
        assert [item["id"] for item in items] == [course_id], items
        return items[0]

    listed = eventually(found, timeout=SAGA_WITHIN)
    assert (listed["price"], listed["currency"], listed["lesson_count"]) == (PRICE, "usd", 2)
    assert problem(journeys.enroll(student, course_id), 402)["price"] == PRICE
    outline = _lessons(journeys, student, course_id)
    assert [(lesson["media_id"], lesson["content"]) for lesson in outline] == [(None, None)] * 2
    problem(journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers), 404)

    # -- 4. ... buys it: intent, payment at Stripe, Stripe's signed webhook, enrollment.
    intent, _ = stripe.buy(student, course_id)
    payment_id = intent["payment_id"]
    assert (intent["amount"], intent["currency"], intent["course_id"]) == (PRICE, "usd", course_id)

    def enrolled() -> dict:
        mine = _get(journeys, student, "/api/v1/enrollments")["items"]
        assert len(mine) == 1, mine
        return mine[0]

    enrollment = eventually(enrolled, timeout=SAGA_WITHIN)
    assert (enrollment["course_id"], enrollment["source"]) == (course_id, payment_id)
    assert enrollment["status"] == "active"

    # -- 5. ... watches: the lesson shows its video, and its signed URL serves the upload.
    opened = _lessons(journeys, student, course_id)
    assert [lesson["media_id"] for lesson in opened] == [media_id, None]

    def watchable() -> dict:
        response = journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers)
        assert response.status_code == 200, response.text
        return response.json()

    watched = eventually(watchable, timeout=SAGA_WITHIN)
    assert watched["transcript"] == SENTENCE
    downloaded = httpx.get(watched["url"], timeout=30)  # straight to the store, no token
    assert downloaded.status_code == 200, downloaded.text[:300]
    assert downloaded.content == video

    # -- 6. ... completes every lesson.
    for lesson_id in (video_lesson, text_lesson):
        done = journeys.http.post(
            f"/api/v1/courses/{course_id}/lessons/{lesson_id}/complete", headers=student.headers
        )
        assert done.status_code == 200, done.text
    progress = done.json()
    assert (progress["percent"], progress["total_lessons"]) == (100, 2)
    assert sorted(progress["completed_lesson_ids"]) == sorted([video_lesson, text_lesson])
    assert progress["completed_at"] is not None
    (course_completed,) = bus.wait_for(
        "courses",
        lambda e: e.type == "course.completed.v1" and e.data["course_id"] == course_id,
    )
    assert course_completed.data["user_id"] == student.id

    # -- 7. ... asks the tutor: the streamed answer quotes the transcript and cites the video.
    session_id = journeys.tutor_session(student, course_id, timeout=LEARNS_WITHIN)

    def grounded_in_the_transcript() -> list[tuple[str, dict]]:
        events = journeys.ask_streamed(student, session_id, QUESTION)
        assert events and events[-1][0] == "done", events[-3:]
        _transcript_citation(events[-1][1]["citations"])
        return events

    events = eventually(grounded_in_the_transcript, timeout=LEARNS_WITHIN, interval=0.5)
    answer = events[-1][1]
    assert {kind for kind, _ in events[:-1]} == {"token"}
    assert "".join(data["delta"] for _, data in events[:-1]) == answer["content"]
    assert (answer["role"], answer["status"]) == ("assistant", "complete")
    assert SENTENCE in answer["content"]
    cited = _transcript_citation(answer["citations"])
    assert (cited["lesson_id"], cited["media_id"]) == (video_lesson, media_id)
    assert (cited["lesson_title"], cited["snippet"]) == (VIDEO_LESSON["title"], SENTENCE)
    # media asked for timed segments: the citation says where in the video it is said.
    assert cited["start_seconds"] == 0.0
    assert 0.0 < cited["end_seconds"] <= 2.5

    hint = journeys.http.post(
        "/api/v1/ai/agents/hint",
        json={"course_id": course_id, "lesson_id": video_lesson, "concept": "the powerhouse"},
        headers=student.headers,
    )
    assert hint.status_code == 200, hint.text
    hinted = hint.json()
    assert (hinted["agent"], hinted["concept"]) == ("hint", "the powerhouse")
    assert [h["level"] for h in hinted["hints"]] == [1, 2]
    assert VIDEO_LESSON["title"] in hinted["hints"][0]["text"]  # where to look
    assert SENTENCE in hinted["hints"][1]["text"]  # the idea to start from
    first = hinted["citations"][0]
    assert (first["source"], first["lesson_id"], first["media_id"]) == (
        "transcript",
        video_lesson,
        media_id,
    )
    assert first["snippet"] == SENTENCE

    # -- 8. ... reviews the course.
    reviewed = journeys.http.post(
        f"/api/v1/courses/{course_id}/reviews",
        json={"rating": 5, "comment": "The video made it click."},
        headers=student.headers,
    )
    assert reviewed.status_code == 201, reviewed.text
    review = reviewed.json()
    assert (review["course_id"], review["user"]["id"], review["rating"]) == (
        course_id,
        student.id,
        5,
    )

    def rated() -> None:
        public = journeys.http.get(f"/api/v1/courses/{course_id}").json()
        assert (public["rating_count"], public["rating_avg"]) == (1, 5.0), public

    eventually(rated, timeout=SAGA_WITHIN)

    # -- 9. The instructor's analytics count the sale, the enrollment, the completions
    # and the review.
    report_path = f"/api/v1/analytics/courses/{course_id}"

    def reported() -> dict:
        totals = _get(journeys, instructor, report_path)["totals"]
        assert (totals["enrollments"], totals["course_completions"]) == (1, 1), totals
        assert totals["reviews"] == 1, totals
        return totals

    totals = eventually(reported, timeout=SAGA_WITHIN)
    assert totals == {
        "enrollments": 1,
        "revocations": 0,
        "lesson_completions": 2,
        "course_completions": 1,
        "reviews": 1,
        "average_rating": 5.0,
        "active_learners": 1,
        "revenue": [_money(payments=1, gross=PRICE, net=PRICE)],
    }
    mine = _get(journeys, instructor, "/api/v1/analytics/instructors/me")
    (item,) = mine["courses"]
    assert (item["course"]["id"], item["course"]["title"]) == (course_id, course["title"])
    assert item["totals"] == totals

    # -- 10. The student refunds: the enrollment, the video and the tutor go; analytics
    # keep the history and walk the money back.
    refunded = journeys.http.post(f"/api/v1/payments/{payment_id}/refund", headers=student.headers)
    assert refunded.status_code == 200, refunded.text
    assert (refunded.json()["status"], refunded.json()["amount_refunded"]) == ("refunded", PRICE)

    def revoked() -> None:
        assert _get(journeys, student, "/api/v1/enrollments")["items"] == []

    eventually(revoked, timeout=SAGA_WITHIN)
    hidden = _lessons(journeys, student, course_id)
    assert [(lesson["media_id"], lesson["content"]) for lesson in hidden] == [(None, None)] * 2

    def not_watchable() -> dict:
        return problem(journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers), 404)

    assert "url" not in eventually(not_watchable, timeout=SAGA_WITHIN)

    def tutor_refused() -> dict:
        asked = journeys.http.post(
            f"/api/v1/ai/sessions/{session_id}/messages",
            json={"content": QUESTION},
            headers=student.headers,
        )
        return problem(asked, 403)  # a published course: enroll (buy) first

    eventually(tutor_refused, timeout=SAGA_WITHIN)
    hint_again = journeys.http.post(
        "/api/v1/ai/agents/hint",
        json={"course_id": course_id, "concept": "the powerhouse"},
        headers=student.headers,
    )
    problem(hint_again, 403)

    def walked_back() -> dict:
        totals = _get(journeys, instructor, report_path)["totals"]
        assert totals["revocations"] == 1, totals
        assert totals["revenue"][0]["refunds"] == 1, totals
        return totals

    totals = eventually(walked_back, timeout=SAGA_WITHIN)
    assert totals == {
        "enrollments": 1,
        "revocations": 1,
        "lesson_completions": 2,
        "course_completions": 1,
        "reviews": 1,
        "average_rating": 5.0,
        "active_learners": 1,
        "revenue": [_money(payments=1, gross=PRICE, refunds=1, refunded=PRICE, net=0)],
    }
    # The instructor still has the video; only the student lost it.
    assert _get(journeys, instructor, f"/api/v1/media/{media_id}")["transcript"] == SENTENCE
