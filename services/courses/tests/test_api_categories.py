"""Categories: everyone lists them, admins create them."""

from __future__ import annotations

import pytest


async def test_admin_creates_categories_and_everyone_lists_them(client, make_user):
    admin = await make_user("admin")
    response = await client.post(
        "/api/v1/categories",
        json={"name": "Data & <b>Science</b>", "description": "Numbers"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    category = response.json()
    assert (category["name"], category["slug"]) == ("Data & Science", "data-science")
    await client.post(
        "/api/v1/categories", json={"name": "Art", "slug": "fine-art"}, headers=admin.headers
    )
    listed = (await client.get("/api/v1/categories")).json()
    assert [(c["name"], c["slug"]) for c in listed["items"]] == [
        ("Art", "fine-art"),
        ("Data & Science", "data-science"),
    ]
    assert listed["next_cursor"] is None


async def test_categories_are_paginated(client, make_user):
    admin = await make_user("admin")
    for name in ("C", "A", "B"):
        await client.post("/api/v1/categories", json={"name": name}, headers=admin.headers)
    first = (await client.get("/api/v1/categories", params={"limit": 2})).json()
    rest = (
        await client.get("/api/v1/categories", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [c["name"] for c in first["items"] + rest["items"]] == ["A", "B", "C"]
    bad = await client.get("/api/v1/categories", params={"cursor": "e30"})
    assert bad.status_code == 422


async def test_duplicate_category_is_409(client, make_user):
    admin = await make_user("admin")
    await client.post("/api/v1/categories", json={"name": "Music"}, headers=admin.headers)
    again = await client.post("/api/v1/categories", json={"name": "Music"}, headers=admin.headers)
    assert again.status_code == 409
    same_slug = await client.post(
        "/api/v1/categories", json={"name": "Other", "slug": "music"}, headers=admin.headers
    )
    assert same_slug.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "slug": "Not A Slug"}, "slug"),
        ({"name": "ok", "description": "x" * 2001}, "description"),
    ],
)
async def test_bad_category_input_is_422(client, make_user, body, field):
    admin = await make_user("admin")
    response = await client.post("/api/v1/categories", json=body, headers=admin.headers)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == field


async def test_only_admins_create_categories(client, make_user):
    assert (await client.post("/api/v1/categories", json={"name": "X"})).status_code == 401
    for role in ("student", "instructor"):
        caller = await make_user(role)
        response = await client.post(
            "/api/v1/categories", json={"name": "X"}, headers=caller.headers
        )
        assert response.status_code == 403
