"""Uploading a video in chunks, having it processed, and who may watch it."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from unpuzzle_common.events import parse_data

READY_WITHIN = 20.0


def _ffmpeg(path: Path, *args: str) -> Path:
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi"]
    command += ["-i", "testsrc=duration=2:size=320x240:rate=10", *args, str(path)]
    subprocess.run(command, check=True, timeout=60, capture_output=True)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real 2-second videos: one over the default 8 MiB chunk size, one tiny.

    The large one is lossless x264 of a noisy picture (about 11 MB), so it takes two
    chunks: a full one (which the gateway must let through) and the remainder.
    """
    folder = tmp_path_factory.mktemp("videos")
    large = _ffmpeg(
        folder / "lecture.mp4",
        *("-vf", "scale=640:480,noise=alls=100:allf=t+u"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"),
    )
    small = _ffmpeg(folder / "intro.mp4", "-pix_fmt", "yuv420p")
    return {"large": large, "small": small}


def _download(url: str) -> bytes:
    # A signed URL of the object store: no token, straight to the store.
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text[:300]
    return response.content


def test_chunked_upload_is_processed_and_served_by_signed_url(
    journeys, problem, eventually, bus, videos
):
    instructor = journeys.user("instructor")
    data = videos["large"].read_bytes()

    created = journeys.http.post(
        "/api/v1/media/uploads",
        json={"filename": "lecture.mp4", "file_size": len(data), "content_type": "video/mp4"},
        headers=instructor.headers,
    )
    assert created.status_code == 201, created.text
    upload = created.json()
    chunk_size, upload_id = upload["chunk_size"], upload["upload_id"]
    assert upload["total_chunks"] == math.ceil(len(data) / chunk_size) >= 2
    assert upload["received_chunks"] == []

    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    for number, chunk in enumerate(chunks):
        md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
        sent = journeys.http.put(
            f"/api/v1/media/uploads/{upload_id}/chunks/{number}",
            content=chunk,
            headers={**instructor.headers, "Content-MD5": md5},
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["size"] == len(chunk)
        if number == 0:  # what a resuming client asks
            state = journeys.http.get(
                f"/api/v1/media/uploads/{upload_id}", headers=instructor.headers
            )
            assert state.json()["received_chunks"] == [0]

    completed = journeys.http.post(
        f"/api/v1/media/uploads/{upload_id}/complete", headers=instructor.headers
    )
    assert completed.status_code == 201, completed.text
    media_id = completed.json()["id"]
    assert completed.json()["processing_status"] in {"pending", "processing", "ready"}
    again = journeys.http.post(
        f"/api/v1/media/uploads/{upload_id}/complete", headers=instructor.headers
    )
    assert again.json()["id"] == media_id  # completing twice is the same file

    media = journeys.processed_media(instructor, media_id, timeout=READY_WITHIN)
    assert media["size"] == len(data)
    assert media["duration"] == pytest.approx(2.0, abs=0.2)
    assert (media["metadata"]["width"], media["metadata"]["height"]) == (640, 480)
    assert _download(media["url"]) == data
    assert _download(media["thumbnail_url"])[:3] == b"\xff\xd8\xff"  # a JPEG

    mine = journeys.http.get("/api/v1/media", headers=instructor.headers)
    assert media_id in [item["id"] for item in mine.json()["items"]]

    # Nobody else may see it: not a student, not another instructor.
    for stranger in (journeys.user("student"), journeys.user("instructor")):
        problem(journeys.http.get(f"/api/v1/media/{media_id}", headers=stranger.headers), 404)
        problem(
            journeys.http.get(f"/api/v1/media/uploads/{upload_id}", headers=stranger.headers), 404
        )
        problem(journeys.http.delete(f"/api/v1/media/{media_id}", headers=stranger.headers), 404)

    events = bus.wait_for("media", lambda e: e.data["media_id"] == media_id, count=2)
    (uploaded,) = [e for e in events if e.type == "media.uploaded.v1"]
    (processed,) = [e for e in events if e.type == "media.processed.v1"]
    assert uploaded.data["owner_id"] == instructor.id
    assert processed.data["duration"] == pytest.approx(2.0, abs=0.2)
    assert parse_data(processed.type, processed.data).has_thumbnail is True


def test_cli_upload_becomes_a_lesson_video_enrolled_students_may_watch(
    journeys, problem, eventually, videos, lesson_ids
):
    instructor = journeys.user("instructor")
    media_id = _upload_with_the_cli(journeys, instructor, videos["small"])["id"]
    ready = journeys.processed_media(instructor, media_id, timeout=READY_WITHIN)
    assert (ready["metadata"]["width"], ready["metadata"]["height"]) == (320, 240)

    course = journeys.create_course(
        instructor,
        title="Test patterns",
        lessons=[{"title": "Colour bars", "media_id": media_id, "content": "<p>Bars.</p>"}],
    )
    (lesson_id,) = lesson_ids(course)
    student, outsider = journeys.user("student"), journeys.user("student")
    problem(journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers), 404)
    assert journeys.enroll(student, course["id"]).status_code == 201

    # media learns of the course's lessons and the enrollment by events (§3: within 2 s).
    def watchable() -> dict:
        response = journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers)
        assert response.status_code == 200, response.text
        return response.json()

    seen = eventually(watchable, timeout=2)
    assert _download(seen["url"]) == videos["small"].read_bytes()
    problem(journeys.http.get(f"/api/v1/media/{media_id}", headers=outsider.headers), 404)
    # Watching is not owning.
    assert (
        journeys.http.delete(f"/api/v1/media/{media_id}", headers=student.headers).status_code
        == 403
    )

    # courses learns the measured duration from media.processed.v1 (§3: within 2 s).
    def measured() -> None:
        detail = journeys.http.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
        (lesson,) = detail.json()["sections"][0]["lessons"]
        assert (lesson["id"], lesson["duration_seconds"]) == (lesson_id, 2)
        assert detail.json()["total_duration"] == 2

    eventually(measured, timeout=2)


def _upload_with_the_cli(journeys, owner, path: Path) -> dict:
    """``python -m media_service.upload`` through the gateway, as a user would run it."""
    state_dir = path.parent / f"upload-state-{owner.id}"
    command = [sys.executable, "-m", "media_service.upload", str(path)]
    command += ["--token", owner.access_token, "--url", journeys.stack.url]
    command += ["--state-dir", str(state_dir)]
    env = {**os.environ, "XDG_CACHE_HOME": str(state_dir)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    media = json.loads(done.stdout)
    assert media["filename"] == path.name
    assert media["size"] == path.stat().st_size
    assert "100.0%" in done.stderr  # the progress line reached the end
    assert list(state_dir.glob("*.json")) == []  # a finished upload leaves no state
    return media


def test_videos_of_a_deleted_course_are_no_longer_watchable(journeys, eventually, videos):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    media_id = _upload_with_the_cli(journeys, instructor, videos["small"])["id"]
    course = journeys.create_course(
        instructor, title="Withdrawn", lessons=[{"title": "Bars", "media_id": media_id}]
    )
    assert journeys.enroll(student, course["id"]).status_code == 201

    def status() -> int:
        return journeys.http.get(f"/api/v1/media/{media_id}", headers=student.headers).status_code

    def watchable() -> None:
        assert status() == 200

    eventually(watchable, timeout=2)
    deleted = journeys.http.delete(f"/api/v1/courses/{course['id']}", headers=instructor.headers)
    assert deleted.status_code == 204, deleted.text
    gone = journeys.http.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert gone.status_code == 404  # courses: a deleted course is gone for everyone

    def not_watchable() -> None:
        assert status() == 404

    eventually(not_watchable, timeout=2, interval=0.5)


def test_uploads_refuse_students_wrong_sizes_and_lies_about_the_type(journeys, problem):
    student, instructor = journeys.user("student"), journeys.user("instructor")
    declared = {"filename": "a.mp4", "file_size": 1000, "content_type": "video/mp4"}
    problem(
        journeys.http.post("/api/v1/media/uploads", json=declared, headers=student.headers), 403
    )
    executable = {**declared, "filename": "a.exe", "content_type": "application/x-msdownload"}
    problem(
        journeys.http.post("/api/v1/media/uploads", json=executable, headers=instructor.headers),
        422,
    )

    created = journeys.http.post("/api/v1/media/uploads", json=declared, headers=instructor.headers)
    assert created.status_code == 201, created.text
    chunks = f"/api/v1/media/uploads/{created.json()['upload_id']}/chunks"
    problem(journeys.http.put(f"{chunks}/0", content=b"x" * 999, headers=instructor.headers), 422)
    # Over the chunk route's limit (16 MiB): the gateway answers before media reads it.
    body = problem(
        journeys.http.put(
            f"{chunks}/0", content=b"x" * (16 * 1024 * 1024 + 1), headers=instructor.headers
        ),
        413,
    )
    assert body["type"] == "about:blank"
    sent = journeys.http.put(f"{chunks}/0", content=b"x" * 1000, headers=instructor.headers)
    assert sent.status_code == 200, sent.text
    # The bytes are no video: completing refuses them.
    completed = journeys.http.post(
        f"/api/v1/media/uploads/{created.json()['upload_id']}/complete",
        headers=instructor.headers,
    )
    problem(completed, 422)
