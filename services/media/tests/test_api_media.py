"""Media files: who gets the signed URL, listing, deletion, CDN URLs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from media_service.access import apply_course_published, apply_enrollment
from media_service.delivery import UrlSigner, verify_cdn_signature
from unpuzzle_common.db import transaction
from unpuzzle_common.events.schemas import CoursePublished, PublishedLesson


@pytest.fixture
def course_uses(sessions):
    """``await course_uses(media_id)``: a published course with a lesson showing the media."""

    async def publish(media_id: str, *, instructor_id: uuid.UUID | None = None) -> uuid.UUID:
        course_id = uuid.uuid4()
        data = CoursePublished(
            course_id=course_id,
            instructor_id=instructor_id or uuid.uuid4(),
            price=0,
            currency="usd",
            lessons=[
                PublishedLesson(
                    lesson_id=uuid.uuid4(), title="Intro", media_id=uuid.UUID(media_id)
                ),
                PublishedLesson(lesson_id=uuid.uuid4(), title="Text only"),
            ],
        )
        async with transaction(sessions) as session:
            await apply_course_published(session, data, event_time=datetime.now(UTC))
        return course_id

    return publish


@pytest.fixture
def enroll(sessions):
    """``await enroll(user, course_id, active=True, at=None)``: an enrollment event applied."""

    async def apply(user, course_id, *, active=True, at=None, enrollment_id=None):
        enrollment_id = enrollment_id or uuid.uuid4()
        async with transaction(sessions) as session:
            await apply_enrollment(
                session,
                enrollment_id=enrollment_id,
                user_id=user.id,
                course_id=course_id,
                active=active,
                event_time=at or datetime.now(UTC),
            )
        return enrollment_id

    return apply


async def test_the_signed_url_is_for_the_owner_admins_and_enrolled_students(
    uploader, client, instructor, admin, student, stranger, pdf_bytes, course_uses, enroll
):
    data = pdf_bytes(300)
    media = await uploader.upload(instructor, data)
    url = f"/api/v1/media/{media['id']}"
    course_id = await course_uses(media["id"])

    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.get(url, headers=student.headers)).status_code == 404
    await enroll(student, course_id)

    for viewer in (instructor, admin, student):
        response = await client.get(url, headers=viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert httpx.get(body["url"]).content == data
        assert datetime.fromisoformat(body["url_expires_at"]) > datetime.now(UTC)
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await client.get(url)).status_code == 401


async def test_a_revoked_enrollment_takes_the_url_away_and_late_events_do_not_undo_it(
    uploader, client, instructor, student, pdf_bytes, course_uses, enroll
):
    media = await uploader.upload(instructor, pdf_bytes(300))
    url = f"/api/v1/media/{media['id']}"
    course_id = await course_uses(media["id"])
    now = datetime.now(UTC)
    enrollment = await enroll(student, course_id, at=now)
    assert (await client.get(url, headers=student.headers)).status_code == 200

    await enroll(
        student, course_id, active=False, at=now + timedelta(seconds=5), enrollment_id=enrollment
    )
    assert (await client.get(url, headers=student.headers)).status_code == 404
    # The created event delivered again, late: the revocation is newer and stays.
    await enroll(student, course_id, at=now, enrollment_id=enrollment)
    assert (await client.get(url, headers=student.headers)).status_code == 404


async def test_a_course_instructor_sees_the_media_of_their_lessons(
    uploader, client, instructor, stranger, pdf_bytes, course_uses
):
    media = await uploader.upload(instructor, pdf_bytes(300))
    await course_uses(media["id"], instructor_id=stranger.id)
    response = await client.get(f"/api/v1/media/{media['id']}", headers=stranger.headers)
    assert response.status_code == 200


async def test_my_media_are_listed_newest_first_in_pages(
    uploader, client, instructor, stranger, pdf_bytes
):
    ids = [(await uploader.upload(instructor, pdf_bytes(100 + n)))["id"] for n in range(3)]
    await uploader.upload(stranger, pdf_bytes(100))

    first = (await client.get("/api/v1/media?limit=2", headers=instructor.headers)).json()
    second = (
        await client.get(
            f"/api/v1/media?limit=2&cursor={first['next_cursor']}", headers=instructor.headers
        )
    ).json()

    assert [m["id"] for m in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert all(m["url"].startswith("http") for m in first["items"])


async def test_deleting_a_media_file_removes_its_objects(
    uploader, client, instructor, admin, student, stranger, store, pdf_bytes, course_uses, enroll
):
    media = await uploader.upload(instructor, pdf_bytes(300))
    url = f"/api/v1/media/{media['id']}"
    await enroll(student, await course_uses(media["id"]))

    assert (await client.delete(url, headers=stranger.headers)).status_code == 404
    assert (await client.delete(url, headers=student.headers)).status_code == 403
    assert (await client.delete(url, headers=instructor.headers)).status_code == 204

    assert (await client.get(url, headers=instructor.headers)).status_code == 404
    assert httpx.get(media["url"]).status_code in (403, 404)  # S3 may hide a missing key
    other = await uploader.upload(instructor, pdf_bytes(200))
    assert (
        await client.delete(f"/api/v1/media/{other['id']}", headers=admin.headers)
    ).status_code == 204


def test_cdn_urls_are_signed_and_expire(settings, store):
    cdn = settings.model_copy(update={"cdn_base_url": "https://cdn.example.com/"})
    signed = UrlSigner(cdn, store).sign("media/abc/original.mp4")

    parts = urlsplit(signed.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}"
        == "https://cdn.example.com/media/abc/original.mp4"
    )
    assert int(query["expires"]) == int(signed.expires_at.timestamp())
    secret = cdn.cdn_signing_key.get_secret_value().encode()
    assert verify_cdn_signature(secret, parts.path, int(query["expires"]), query["signature"])
    assert not verify_cdn_signature(
        secret, "/media/other", int(query["expires"]), query["signature"]
    )
    assert not verify_cdn_signature(
        secret, parts.path, int(query["expires"]), query["signature"], now=int(query["expires"]) + 1
    )
