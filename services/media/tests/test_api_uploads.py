"""Resumable uploads through the API, with the bytes checked in the S3 server."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from sqlalchemy import func, select

from media_service.models import media_files, upload_sessions
from media_service.storage import NoSuchKey

CHUNK = 64 * 1024


async def test_multi_chunk_upload_downloads_byte_for_byte(uploader, instructor, pdf_bytes):
    data = pdf_bytes(3 * CHUNK + 1234)
    upload = await uploader.start(instructor, data)
    assert (upload["chunk_size"], upload["total_chunks"]) == (CHUNK, 4)
    assert upload["status"] == "open" and upload["received_chunks"] == []

    for number in range(4):
        response = await uploader.put_chunk(instructor, upload, number, data)
        assert response.status_code == 200, response.text
        assert response.json()["received_count"] == number + 1
    response = await uploader.complete(instructor, upload)

    assert response.status_code == 201, response.text
    media = response.json()
    assert media["size"] == len(data)
    assert media["processing_status"] == "pending"
    assert response.headers["location"] == f"/api/v1/media/{media['id']}"
    download = httpx.get(media["url"])
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "application/pdf"


async def test_upload_resumes_after_missing_chunks(uploader, client, instructor, pdf_bytes):
    data = pdf_bytes(3 * CHUNK + 10)
    upload = await uploader.start(instructor, data)
    for number in (0, 2):
        assert (await uploader.put_chunk(instructor, upload, number, data)).status_code == 200

    early = await uploader.complete(instructor, upload)
    assert early.status_code == 422
    assert early.json()["missing_chunks"] == [1, 3]

    session = await client.get(
        f"/api/v1/media/uploads/{upload['upload_id']}", headers=instructor.headers
    )
    assert session.json()["received_chunks"] == [0, 2]
    for number in (1, 3):
        assert (await uploader.put_chunk(instructor, upload, number, data)).status_code == 200
    done = await uploader.complete(instructor, upload)
    assert done.status_code == 201
    assert httpx.get(done.json()["url"]).content == data


async def test_sending_a_chunk_again_replaces_it(uploader, instructor, pdf_bytes):
    data = pdf_bytes(2 * CHUNK)
    wrong = data[:CHUNK] + bytes(CHUNK)  # chunk 1 first arrives corrupted, same size
    upload = await uploader.start(instructor, data)
    await uploader.put_chunk(instructor, upload, 0, data)
    await uploader.put_chunk(instructor, upload, 1, wrong)
    again = await uploader.put_chunk(instructor, upload, 1, data)

    assert again.status_code == 200
    assert again.json()["received_count"] == 2
    media = (await uploader.complete(instructor, upload)).json()
    assert httpx.get(media["url"]).content == data


@pytest.mark.parametrize(
    ("number", "body_size"),
    [(0, CHUNK - 1), (0, CHUNK + 1), (1, 99), (1, 101)],
    ids=["short-chunk", "long-chunk", "short-last", "long-last"],
)
async def test_a_chunk_of_the_wrong_size_is_refused(
    client, uploader, instructor, pdf_bytes, number, body_size
):
    upload = await uploader.start(instructor, pdf_bytes(CHUNK + 100))
    response = await client.put(
        f"/api/v1/media/uploads/{upload['upload_id']}/chunks/{number}",
        content=bytes(body_size),
        headers=instructor.headers,
    )
    assert response.status_code == 422
    assert response.json()["expected_size"] == (CHUNK if number == 0 else 100)


async def test_a_chunk_streamed_without_length_is_size_checked_too(
    client, uploader, instructor, pdf_bytes
):
    upload = await uploader.start(instructor, pdf_bytes(CHUNK + 100))

    async def body():
        yield bytes(CHUNK)
        yield b"one byte too many"

    response = await client.put(
        f"/api/v1/media/uploads/{upload['upload_id']}/chunks/0",
        content=body(),
        headers=instructor.headers,
    )
    assert response.status_code == 422


@pytest.mark.parametrize("lie", [-500, +500], ids=["declared-smaller", "declared-larger"])
async def test_a_lie_about_the_file_size_shows_on_the_last_chunk(
    client, uploader, instructor, pdf_bytes, lie
):
    data = pdf_bytes(2 * CHUNK)
    upload = await client.post(
        "/api/v1/media/uploads",
        json={"filename": "a.pdf", "file_size": len(data) + lie, "content_type": "application/pdf"},
        headers=instructor.headers,
    )
    upload = upload.json()
    last = upload["total_chunks"] - 1
    for number in range(last):
        assert (await uploader.put_chunk(instructor, upload, number, data)).status_code == 200
    assert (await uploader.put_chunk(instructor, upload, last, data)).status_code == 422
    assert (await uploader.complete(instructor, upload)).json()["missing_chunks"] == [last]


async def test_chunk_numbers_outside_the_upload_are_refused(uploader, instructor, pdf_bytes):
    data = pdf_bytes(100)
    upload = await uploader.start(instructor, data)
    response = await uploader.put_chunk(instructor, upload, 1, data)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "n"


async def test_checksums_are_verified(uploader, instructor, pdf_bytes):
    data = pdf_bytes(CHUNK + 10)
    upload = await uploader.start(instructor, data)
    chunk = data[:CHUNK]
    good_md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
    bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    good_sha = hashlib.sha256(chunk).hexdigest()

    bad = await uploader.put_chunk(instructor, upload, 0, data, **{"Content-MD5": bad_md5})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "Content-MD5"
    bad_sha = await uploader.put_chunk(
        instructor, upload, 0, data, **{"X-Checksum-SHA256": hashlib.sha256(b"x").hexdigest()}
    )
    assert bad_sha.status_code == 422
    garbled = await uploader.put_chunk(instructor, upload, 0, data, **{"Content-MD5": "not md5"})
    assert garbled.status_code == 422

    good = await uploader.put_chunk(
        instructor, upload, 0, data, **{"Content-MD5": good_md5, "X-Checksum-SHA256": good_sha}
    )
    assert good.status_code == 200
    assert good.json()["sha256"] == good_sha


@pytest.mark.parametrize(
    ("head", "filename", "content_type"),
    [
        (b"\x7fELF\x02\x01\x01", "lecture.mp4", "video/mp4"),
        (b"MZ\x90\x00\x03", "lecture.mp4", "video/mp4"),
        (b"\x89PNG\r\n\x1a\n", "notes.pdf", "application/pdf"),
    ],
    ids=["elf-as-mp4", "windows-exe-as-mp4", "png-as-pdf"],
)
async def test_a_disguised_file_is_refused_and_deleted(
    uploader, client, instructor, store, sessions, head, filename, content_type
):
    data = head + bytes(CHUNK + 100 - len(head))
    upload = await uploader.start(instructor, data, filename, content_type)
    for number in range(upload["total_chunks"]):
        await uploader.put_chunk(instructor, upload, number, data)

    response = await uploader.complete(instructor, upload)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "content_type"
    async with sessions() as session:
        key = await session.scalar(
            select(upload_sessions.c.storage_key).where(upload_sessions.c.id == upload["upload_id"])
        )
        assert await session.scalar(select(func.count()).select_from(media_files)) == 0
    with pytest.raises(NoSuchKey):
        await store.read_range(key, 0, 10)
    status = await client.get(
        f"/api/v1/media/uploads/{upload['upload_id']}", headers=instructor.headers
    )
    assert status.json()["status"] == "rejected"


async def test_abort_drops_the_parts(uploader, client, instructor, store, pdf_bytes):
    data = pdf_bytes(2 * CHUNK)
    upload = await uploader.start(instructor, data)
    await uploader.put_chunk(instructor, upload, 0, data)
    url = f"/api/v1/media/uploads/{upload['upload_id']}"

    assert (await client.delete(url, headers=instructor.headers)).status_code == 204

    assert await store.pending_uploads("media/") == []
    assert (await client.get(url, headers=instructor.headers)).json()["status"] == "aborted"
    assert (await uploader.put_chunk(instructor, upload, 1, data)).status_code == 410
    assert (await client.delete(url, headers=instructor.headers)).status_code == 204


async def test_completing_twice_answers_the_same_file(
    uploader, instructor, pdf_bytes, outbox_events
):
    data = pdf_bytes(100)
    upload = await uploader.start(instructor, data)
    await uploader.put_chunk(instructor, upload, 0, data)
    first = await uploader.complete(instructor, upload)
    second = await uploader.complete(instructor, upload)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(await outbox_events("media.uploaded.v1")) == 1


async def test_completion_writes_the_uploaded_event(uploader, instructor, pdf_bytes, outbox_events):
    media = await uploader.upload(instructor, pdf_bytes(100))
    [event] = await outbox_events("media.uploaded.v1")
    assert event["source"] == "media"
    assert event["subject"] == media["id"]
    assert event["data"] == {
        "media_id": media["id"],
        "owner_id": str(instructor.id),
        "content_type": "application/pdf",
        "duration": None,
        "transcript": None,
    }


async def test_students_cannot_start_uploads(client, student):
    body = {"filename": "a.pdf", "file_size": 10, "content_type": "application/pdf"}
    response = await client.post("/api/v1/media/uploads", json=body, headers=student.headers)
    assert response.status_code == 403
    anonymous = await client.post("/api/v1/media/uploads", json=body)
    assert anonymous.status_code == 401


async def test_admins_may_start_uploads(uploader, admin, pdf_bytes):
    assert (await uploader.start(admin, pdf_bytes(10)))["status"] == "open"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"filename": "x.exe", "file_size": 10, "content_type": "application/x-msdownload"},
            "content_type",
        ),
        ({"filename": "lecture.exe", "file_size": 10, "content_type": "video/mp4"}, "filename"),
        (
            {"filename": "../../etc/passwd.mp4", "file_size": 10, "content_type": "video/mp4"},
            "filename",
        ),
        (
            {"filename": "huge.png", "file_size": 51 * 1024 * 1024, "content_type": "image/png"},
            "file_size",
        ),
        ({"filename": "empty.png", "file_size": 0, "content_type": "image/png"}, "file_size"),
    ],
    ids=["type-not-allowed", "wrong-extension", "path-in-name", "over-the-image-limit", "empty"],
)
async def test_what_a_file_claims_is_validated(client, instructor, body, field):
    response = await client.post("/api/v1/media/uploads", json=body, headers=instructor.headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_other_people_cannot_see_or_feed_an_upload(
    uploader, client, instructor, stranger, pdf_bytes
):
    data = pdf_bytes(100)
    upload = await uploader.start(instructor, data)
    url = f"/api/v1/media/uploads/{upload['upload_id']}"
    assert (await client.get(url, headers=stranger.headers)).status_code == 404
    assert (await uploader.put_chunk(stranger, upload, 0, data)).status_code == 404
    assert (await uploader.complete(stranger, upload)).status_code == 404
    assert (await client.delete(url, headers=stranger.headers)).status_code == 404


async def test_json_routes_keep_a_small_body_limit(client, instructor):
    body = b'{"filename": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/media/uploads",
        content=body,
        headers={**instructor.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
