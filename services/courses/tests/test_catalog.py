"""The catalog: full-text search, filters, sorts and keyset pages."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from sqlalchemy import update

from courses_service.models import courses
from unpuzzle_common.db import transaction
from unpuzzle_common.pagination import encode_cursor

PROBLEM = "application/problem+json"


@pytest.fixture
async def shelf(client, make_user, make_course, sessions):
    """Six published courses with known prices, ratings and enrollment counts."""
    admin = await make_user("admin")
    ada = await make_user("instructor", full_name="Ada Lovelace")
    alan = await make_user("instructor", full_name="Alan Turing")
    code = (
        await client.post("/api/v1/categories", json={"name": "Programming"}, headers=admin.headers)
    ).json()
    art = (
        await client.post("/api/v1/categories", json={"name": "Art"}, headers=admin.headers)
    ).json()
    specs = [
        ("Python for Data Science", "Pandas and numpy, step by step.", 0, code, ada, 40, (9, 2)),
        (
            "Advanced Python Programming",
            "Decorators, generators, async.",
            4999,
            code,
            ada,
            10,
            (20, 5),
        ),
        ("Rust in Action", "Ownership and borrowing explained.", 2999, code, alan, 25, (12, 3)),
        (
            "Watercolor Basics",
            "Painting landscapes with Python-like precision.",
            1999,
            art,
            alan,
            5,
            (5, 1),
        ),
        ("Figure Drawing", "Gesture, anatomy, proportion.", 0, art, alan, 0, (0, 0)),
        ("Go Concurrency", "Goroutines and channels.", 999, code, ada, 25, (16, 4)),
    ]
    made = {}
    for title, description, price, category, teacher, enrolled, (rating_sum, rating_count) in specs:
        course = await make_course(
            teacher,
            title=title,
            description=description,
            price=price,
            category_id=category["id"],
        )
        async with transaction(sessions) as session:
            await session.execute(
                update(courses)
                .where(courses.c.id == course["id"])
                .values(enrollment_count=enrolled, rating_sum=rating_sum, rating_count=rating_count)
            )
        made[title] = course
    await make_course(ada, title="Python Draft", publish=False)
    return {"courses": made, "ada": ada, "alan": alan, "code": code, "art": art}


def titles(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_items_carry_instructor_category_and_aggregates(client, shelf):
    response = await client.get("/api/v1/courses", params={"q": "rust"})
    [item] = response.json()["items"]
    assert item["instructor"] == {"id": str(shelf["alan"].id), "full_name": "Alan Turing"}
    assert item["category"] == {
        "id": shelf["code"]["id"],
        "name": "Programming",
        "slug": "programming",
    }
    assert item["rating_avg"] == 4.0 and item["rating_count"] == 3
    assert item["enrollment_count"] == 25
    assert item["lesson_count"] == 1 and item["total_duration"] == 60
    assert item["price"] == 2999 and item["currency"] == "usd"


async def test_search_ranks_title_matches_above_description_matches(client, shelf):
    found = titles(await client.get("/api/v1/courses", params={"q": "python"}))
    assert set(found) == {
        "Python for Data Science",
        "Advanced Python Programming",
        "Watercolor Basics",
    }
    assert found[-1] == "Watercolor Basics", "a description match ranks below title matches"


async def test_search_matches_word_prefixes_and_stems(client, shelf):
    assert (
        titles(await client.get("/api/v1/courses", params={"q": "pyth"}))[-1] == "Watercolor Basics"
    )
    assert titles(await client.get("/api/v1/courses", params={"q": "painting landscape"})) == [
        "Watercolor Basics"
    ]
    assert titles(await client.get("/api/v1/courses", params={"q": "zzzz"})) == []


async def test_search_input_cannot_inject_tsquery_syntax(client, shelf):
    for q in ("python & !rust", "')|(", "a:* | b", "\\", "<->"):
        assert (await client.get("/api/v1/courses", params={"q": q})).status_code == 200


async def test_filters(client, shelf):
    get = lambda **p: client.get("/api/v1/courses", params=p)  # noqa: E731
    assert set(titles(await get(category="art"))) == {"Watercolor Basics", "Figure Drawing"}
    assert set(titles(await get(category=shelf["art"]["id"]))) == {
        "Watercolor Basics",
        "Figure Drawing",
    }
    assert set(titles(await get(instructor_id=str(shelf["alan"].id)))) == {
        "Rust in Action",
        "Watercolor Basics",
        "Figure Drawing",
    }
    assert set(titles(await get(free="true"))) == {"Python for Data Science", "Figure Drawing"}
    assert len(titles(await get(free="false"))) == 4
    assert set(titles(await get(price_min=1000, price_max=3000))) == {
        "Rust in Action",
        "Watercolor Basics",
    }
    assert titles(await get(category="no-such-category")) == []
    assert set(titles(await get(q="python", category="programming"))) == {
        "Python for Data Science",
        "Advanced Python Programming",
    }


SORTED_FIRST_THREE = {
    "newest": ["Go Concurrency", "Figure Drawing", "Watercolor Basics"],
    "popular": ["Python for Data Science", "Go Concurrency", "Rust in Action"],
    # 5.0, 4.5, then three at 4.0 where more ratings rank higher (5 > 4 > 3).
    "rating": ["Watercolor Basics", "Python for Data Science", "Advanced Python Programming"],
    "price": ["Figure Drawing", "Python for Data Science", "Go Concurrency"],
}


async def test_sorts(client, shelf):
    for sort, expected in SORTED_FIRST_THREE.items():
        found = titles(await client.get("/api/v1/courses", params={"sort": sort, "limit": 3}))
        if sort == "popular":
            # Go and Rust tie at 25 enrollments: the id breaks the tie, both orders are fine.
            assert found[0] == expected[0] and set(found[1:]) == set(expected[1:]), found
        elif sort == "price":
            # Two free courses tie at 0: the id breaks the tie.
            assert set(found[:2]) == set(expected[:2]) and found[2] == expected[2], found
        else:
            assert found == expected, sort


async def test_keyset_pages_cover_everything_once(client, shelf):
    for sort in SORTED_FIRST_THREE:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params = {"sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/api/v1/courses", params=params)).json()
            seen += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 6, sort


async def test_relevance_pages(client, shelf):
    first = (await client.get("/api/v1/courses", params={"q": "python", "limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await client.get(
            "/api/v1/courses", params={"q": "python", "limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [i["title"] for i in rest["items"]] == ["Watercolor Basics"]
    assert rest["next_cursor"] is None


BAD_CURSORS = [
    "not-base64!!",
    base64.urlsafe_b64encode(b"[1,2]").decode(),
    encode_cursor({"s": "price", "k": [1, str(uuid.uuid4())]}),  # another sort's cursor
    encode_cursor({"s": "newest", "k": ["yesterday", "x"]}),
    encode_cursor({"s": "newest"}),
    "x" * 600,
]


async def test_bad_cursor_is_a_422(client, shelf):
    for cursor in BAD_CURSORS:
        response = await client.get("/api/v1/courses", params={"cursor": cursor, "sort": "newest"})
        assert response.status_code == 422, (cursor, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"sort": "cheapest"}, "sort"),
        ({"price_min": -1}, "price_min"),
        ({"price_min": 10, "price_max": 5}, "price_max"),
        ({"instructor_id": "nope"}, "instructor_id"),
        ({"q": "x" * 201}, "q"),
        ({"free": "maybe"}, "free"),
    ],
)
async def test_bad_query_parameters_are_422(client, params, field):
    response = await client.get("/api/v1/courses", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_the_cursor_is_opaque_json_inside(client, shelf):
    body = (await client.get("/api/v1/courses", params={"sort": "price", "limit": 1})).json()
    padded = body["next_cursor"] + "=" * (-len(body["next_cursor"]) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded))["s"] == "price"
