"""The service shell: health, readiness, metrics, OpenAPI."""

from __future__ import annotations


async def test_health_readiness_and_metrics(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "nats": "ok"}
    await client.get("/api/v1/courses")
    metrics = await client.get("/metrics")
    assert 'route="/api/v1/courses"' in metrics.text


async def test_openapi_documents_every_public_path(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {
        "/api/v1/categories",
        "/api/v1/courses",
        "/api/v1/courses/{course_ref}",
        "/api/v1/courses/{course_ref}/publish",
        "/api/v1/courses/{course_ref}/unpublish",
        "/api/v1/courses/{course_ref}/sections",
        "/api/v1/courses/{course_ref}/sections/{section_id}",
        "/api/v1/courses/{course_ref}/sections/{section_id}/lessons",
        "/api/v1/courses/{course_ref}/sections/{section_id}/lessons/{lesson_id}",
        "/api/v1/courses/{course_ref}/enroll",
        "/api/v1/courses/{course_ref}/lessons/{lesson_id}/complete",
        "/api/v1/courses/{course_ref}/progress",
        "/api/v1/courses/{course_ref}/reviews",
        "/api/v1/enrollments",
    } <= set(paths)
    detail = paths["/api/v1/courses/{course_ref}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/CourseDetail")
