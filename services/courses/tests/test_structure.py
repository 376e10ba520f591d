"""Sections and lessons: adding, ordering and reordering, moving, removing, validation."""

from __future__ import annotations

import uuid

import pytest

from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import MediaProcessed


@pytest.fixture
async def course(make_user, make_course):
    teacher = await make_user("instructor")
    return teacher, await make_course(teacher, lessons=0, publish=False)


@pytest.fixture
def api(client):
    """Small helpers over the structure endpoints of one course."""

    class Api:
        def __init__(self, course_id, headers):
            self.base = f"/api/v1/courses/{course_id}"
            self.headers = headers

        async def section(self, title, **extra):
            response = await client.post(
                f"{self.base}/sections", json={"title": title, **extra}, headers=self.headers
            )
            assert response.status_code == 201, response.text
            return response.json()

        async def lesson(self, section_id, title, **extra):
            response = await client.post(
                f"{self.base}/sections/{section_id}/lessons",
                json={"title": title, **extra},
                headers=self.headers,
            )
            assert response.status_code == 201, response.text
            return response.json()

        async def outline(self):
            body = (await client.get(self.base, headers=self.headers)).json()
            return [
                (s["title"], [lesson["title"] for lesson in s["lessons"]]) for s in body["sections"]
            ]

        async def detail(self):
            return (await client.get(self.base, headers=self.headers)).json()

    return lambda course_id, headers: Api(course_id, headers)


async def test_sections_append_or_insert_at_a_position(course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    first = await a.section("A")
    await a.section("C")
    inserted = await a.section("B", position=1)
    await a.section("Z", position=999)
    assert (first["position"], inserted["position"]) == (0, 1)
    assert [t for t, _ in await a.outline()] == ["A", "B", "C", "Z"]


async def test_reorder_sections_up_and_down(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    ids = {t: (await a.section(t))["id"] for t in "ABCD"}
    url = f"/api/v1/courses/{c['id']}/sections"
    moved = await client.patch(f"{url}/{ids['D']}", json={"position": 0}, headers=teacher.headers)
    assert moved.status_code == 200 and moved.json()["position"] == 0
    assert [t for t, _ in await a.outline()] == ["D", "A", "B", "C"]
    await client.patch(f"{url}/{ids['D']}", json={"position": 3}, headers=teacher.headers)
    assert [t for t, _ in await a.outline()] == ["A", "B", "C", "D"]
    await client.patch(
        f"{url}/{ids['A']}", json={"position": 50, "title": "A2"}, headers=teacher.headers
    )
    assert [t for t, _ in await a.outline()] == ["B", "C", "D", "A2"]


async def test_lessons_reorder_and_move_between_sections(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s1, s2 = await a.section("S1"), await a.section("S2")
    l1 = await a.lesson(s1["id"], "one")
    l2 = await a.lesson(s1["id"], "two")
    l3 = await a.lesson(s1["id"], "three")
    await a.lesson(s2["id"], "four")
    url = f"/api/v1/courses/{c['id']}/sections"
    r = await client.patch(
        f"{url}/{s1['id']}/lessons/{l3['id']}", json={"position": 0}, headers=teacher.headers
    )
    assert r.status_code == 200 and r.json()["position"] == 0
    assert await a.outline() == [("S1", ["three", "one", "two"]), ("S2", ["four"])]
    r = await client.patch(
        f"{url}/{s1['id']}/lessons/{l1['id']}",
        json={"section_id": s2["id"], "position": 0},
        headers=teacher.headers,
    )
    assert r.status_code == 200 and r.json()["section_id"] == s2["id"]
    assert await a.outline() == [("S1", ["three", "two"]), ("S2", ["one", "four"])]
    # The path names the lesson's current section: the old one no longer holds it.
    r = await client.patch(
        f"{url}/{s1['id']}/lessons/{l1['id']}", json={"title": "x"}, headers=teacher.headers
    )
    assert r.status_code == 404
    r = await client.delete(f"{url}/{s1['id']}/lessons/{l2['id']}", headers=teacher.headers)
    assert r.status_code == 204
    detail = await a.detail()
    assert [
        (lesson["title"], lesson["position"]) for lesson in detail["sections"][0]["lessons"]
    ] == [("three", 0)]
    assert detail["lesson_count"] == 3


async def test_many_reorders_keep_positions_dense(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    section = await a.section("S")
    lessons = [await a.lesson(section["id"], str(n)) for n in range(6)]
    url = f"/api/v1/courses/{c['id']}/sections/{section['id']}/lessons"
    for lesson, position in zip(lessons, [5, 0, 3, 1, 4, 2], strict=True):
        r = await client.patch(
            f"{url}/{lesson['id']}", json={"position": position}, headers=teacher.headers
        )
        assert r.status_code == 200, r.text
    positions = [lesson["position"] for lesson in (await a.detail())["sections"][0]["lessons"]]
    assert positions == [0, 1, 2, 3, 4, 5]


async def test_deleting_a_section_removes_its_lessons_and_closes_the_gap(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s1, s2, s3 = await a.section("S1"), await a.section("S2"), await a.section("S3")
    await a.lesson(s2["id"], "gone", duration_seconds=100)
    await a.lesson(s3["id"], "kept", duration_seconds=30)
    r = await client.delete(
        f"/api/v1/courses/{c['id']}/sections/{s2['id']}", headers=teacher.headers
    )
    assert r.status_code == 204
    detail = await a.detail()
    assert [(s["title"], s["position"]) for s in detail["sections"]] == [("S1", 0), ("S3", 1)]
    assert (detail["lesson_count"], detail["total_duration"]) == (1, 30)
    assert s1


async def test_totals_follow_lesson_durations(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s = await a.section("S")
    lesson = await a.lesson(s["id"], "one", duration_seconds=100)
    await a.lesson(s["id"], "two")
    await client.patch(
        f"/api/v1/courses/{c['id']}/sections/{s['id']}/lessons/{lesson['id']}",
        json={"duration_seconds": 250},
        headers=teacher.headers,
    )
    detail = await a.detail()
    assert (detail["lesson_count"], detail["total_duration"]) == (2, 250)


async def test_media_duration_fills_lessons_before_and_after_processing(
    client, course, api, consumer
):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s = await a.section("S")
    early_media, late_media = uuid.uuid4(), uuid.uuid4()
    waiting = await a.lesson(s["id"], "waits for processing", media_id=str(late_media))
    assert waiting["duration_seconds"] is None

    async def processed(media_id, seconds):
        data = MediaProcessed(
            media_id=media_id, owner_id=teacher.id, content_type="video/mp4", duration=seconds
        )
        assert await consumer("media").apply(Envelope.new(data, source="media"))

    await processed(late_media, 61.6)
    detail = await a.detail()
    assert detail["sections"][0]["lessons"][0]["duration_seconds"] == 62
    assert detail["total_duration"] == 62
    await processed(early_media, 30.2)
    attached = await a.lesson(s["id"], "media already processed", media_id=str(early_media))
    assert attached["duration_seconds"] == 30
    detail = await a.detail()
    assert [lesson["duration_seconds"] for lesson in detail["sections"][0]["lessons"]] == [62, 30]
    assert detail["total_duration"] == 92


async def test_last_lesson_of_a_published_course_cannot_be_removed(client, make_user, make_course):
    teacher = await make_user("instructor")
    c = await make_course(teacher, lessons=1)
    section = c["sections"][0]
    lesson = section["lessons"][0]
    base = f"/api/v1/courses/{c['id']}/sections/{section['id']}"
    r = await client.delete(f"{base}/lessons/{lesson['id']}", headers=teacher.headers)
    assert r.status_code == 409
    r = await client.delete(base, headers=teacher.headers)
    assert r.status_code == 409
    assert (await client.get(f"/api/v1/courses/{c['id']}")).json()["lesson_count"] == 1


async def test_lesson_changes_of_a_published_course_are_announced(
    client, make_user, make_course, outbox_events
):
    teacher = await make_user("instructor")
    c = await make_course(teacher, lessons=1)
    section = c["sections"][0]
    media_id = str(uuid.uuid4())
    await client.post(
        f"/api/v1/courses/{c['id']}/sections/{section['id']}/lessons",
        json={"title": "With video", "media_id": media_id, "content": "<p>text</p>"},
        headers=teacher.headers,
    )
    snapshots = await outbox_events("course.published.v1")
    assert len(snapshots) == 2
    lessons = snapshots[-1]["data"]["lessons"]
    assert [(lesson["title"], lesson["media_id"]) for lesson in lessons] == [
        ("Lesson 1", None),
        ("With video", media_id),
    ]
    assert lessons[1]["content"] == "<p>text</p>"


async def test_draft_changes_are_not_announced(client, course, api, outbox_events):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s = await a.section("S")
    await a.lesson(s["id"], "L")
    assert await outbox_events("course.published.v1") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "position": -1}, "position"),
        ({"title": "ok", "position": "first"}, "position"),
        ({"title": "ok", "extra": True}, "extra"),
    ],
)
async def test_bad_section_input(client, course, body, field):
    teacher, c = course
    r = await client.post(f"/api/v1/courses/{c['id']}/sections", json=body, headers=teacher.headers)
    assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "ok", "duration_seconds": -1}, "duration_seconds"),
        ({"title": "ok", "duration_seconds": 1.5}, "duration_seconds"),
        ({"title": "ok", "media_id": "abc"}, "media_id"),
        ({"title": "ok", "content": "x" * 100_001}, "content"),
    ],
)
async def test_bad_lesson_input(client, course, api, body, field):
    teacher, c = course
    s = await api(c["id"], teacher.headers).section("S")
    r = await client.post(
        f"/api/v1/courses/{c['id']}/sections/{s['id']}/lessons", json=body, headers=teacher.headers
    )
    assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]]


async def test_lesson_content_is_sanitised(course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s = await a.section("S")
    lesson = await a.lesson(
        s["id"], "L", content='<h2>Hi</h2><iframe src="x"></iframe><a href="javascript:x">y</a>'
    )
    assert lesson["content"] == '<h2>Hi</h2><a rel="noopener noreferrer nofollow">y</a>'


async def test_unknown_sections_and_lessons_are_404(client, course, make_user, make_course):
    teacher, c = course
    other = await make_course(teacher, title="Other", lessons=1, publish=False)
    foreign_section = other["sections"][0]["id"]
    base = f"/api/v1/courses/{c['id']}/sections"
    for url in (f"{base}/{uuid.uuid4()}", f"{base}/{foreign_section}"):
        assert (
            await client.patch(url, json={"title": "x"}, headers=teacher.headers)
        ).status_code == 404
        r = await client.post(f"{url}/lessons", json={"title": "x"}, headers=teacher.headers)
        assert r.status_code == 404


async def test_only_the_owner_or_an_admin_changes_the_structure(client, make_user, make_course):
    owner = await make_user("instructor")
    other = await make_user("instructor")
    student = await make_user("student")
    admin = await make_user("admin")
    published = await make_course(owner, lessons=1)
    draft = await make_course(owner, title="Draft", lessons=0, publish=False)
    for c, outsider_status in ((published, 403), (draft, 404)):
        url = f"/api/v1/courses/{c['id']}/sections"
        assert (await client.post(url, json={"title": "S"})).status_code == 401
        for outsider in (other, student):
            r = await client.post(url, json={"title": "S"}, headers=outsider.headers)
            assert r.status_code == outsider_status
        assert (
            await client.post(url, json={"title": "S"}, headers=admin.headers)
        ).status_code == 201


async def test_bad_changes_are_422(client, course, api):
    teacher, c = course
    a = api(c["id"], teacher.headers)
    s = await a.section("S")
    lesson = await a.lesson(s["id"], "L")
    base = f"/api/v1/courses/{c['id']}/sections/{s['id']}"
    cases = [
        (base, {"position": -1}, "position"),
        (base, {"title": ""}, "title"),
        (f"{base}/lessons/{lesson['id']}", {"position": -2}, "position"),
        (f"{base}/lessons/{lesson['id']}", {"section_id": "x"}, "section_id"),
        (f"{base}/lessons/{lesson['id']}", {"duration_seconds": 10**9}, "duration_seconds"),
    ]
    for url, body, field in cases:
        r = await client.patch(url, json=body, headers=teacher.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]]
    r = await client.patch(
        f"{base}/lessons/{lesson['id']}",
        json={"section_id": str(uuid.uuid4())},
        headers=teacher.headers,
    )
    assert r.status_code == 404, "moving to a section of no course of yours"
