"""Readiness includes the object store; store failures answer 503 problem+json."""

from __future__ import annotations

import boto3

from media_service.storage import StorageError


async def test_readiness_reports_the_object_store(client):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["storage"] == "ok"


async def test_a_bucket_missing_at_start_up_is_created_by_readiness(client, store, settings):
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    s3.delete_bucket(Bucket=settings.s3_bucket)  # as if the store came up empty after us

    response = await client.get("/readyz")

    assert response.json()["checks"]["storage"] == "ok"
    await store.check()


async def test_an_unreachable_store_is_a_503_with_retry_after(client, app, instructor, monkeypatch):
    async def down(*args, **kwargs):
        raise StorageError("connection refused")

    monkeypatch.setattr(app.state.media.store, "start_multipart", down)
    monkeypatch.setattr(app.state.media.store, "check", down)
    monkeypatch.setattr(app.state.media.store, "ensure_bucket", down)
    body = {"filename": "a.pdf", "file_size": 10, "content_type": "application/pdf"}

    response = await client.post("/api/v1/media/uploads", json=body, headers=instructor.headers)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["storage"] == "unreachable: StorageError"
