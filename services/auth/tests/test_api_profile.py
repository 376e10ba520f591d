"""Profile read/update and admin role assignment; both emit user.updated.v1."""

from __future__ import annotations

from sqlalchemy import select

from auth_service.models import outbox


async def events(app, event_type: str) -> list[dict]:
    async with app.state.auth.sessions() as session:
        rows = await session.execute(select(outbox.c.payload).where(outbox.c.type == event_type))
        return [r.payload for r in rows]


async def test_profile_update_sanitises_and_emits_user_updated(app, client, signup, auth_header):
    tokens = await signup()
    response = await client.patch(
        "/api/v1/auth/me",
        headers=auth_header(tokens),
        json={
            "full_name": "<b>Ada</b> King",
            "bio": "<p>Hi <script>alert(1)</script><a href='javascript:x()'>me</a></p>",
            "avatar_url": "https://cdn.example.com/ada.png",
        },
    )
    assert response.status_code == 200, response.text
    user = response.json()
    assert user["full_name"] == "Ada King"
    assert "<script>" not in user["bio"] and "javascript:" not in user["bio"]
    assert user["bio"].startswith("<p>Hi")
    assert user["avatar_url"] == "https://cdn.example.com/ada.png"
    updated = await events(app, "user.updated.v1")
    assert len(updated) == 1
    assert updated[0]["data"]["full_name"] == "Ada King"


async def test_profile_update_rejects_unknown_fields_and_bad_urls(client, signup, auth_header):
    tokens = await signup()
    unknown = await client.patch(
        "/api/v1/auth/me", headers=auth_header(tokens), json={"email": "x@y.z"}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "email"
    bad_url = await client.patch(
        "/api/v1/auth/me", headers=auth_header(tokens), json={"avatar_url": "javascript:alert(1)"}
    )
    assert bad_url.status_code == 422 and bad_url.json()["errors"][0]["field"] == "avatar_url"


async def test_unchanged_profile_emits_nothing(app, client, signup, auth_header):
    tokens = await signup()
    await client.patch(
        "/api/v1/auth/me", headers=auth_header(tokens), json={"full_name": "Ada Lovelace"}
    )
    assert await events(app, "user.updated.v1") == []


async def test_signup_writes_user_registered_in_the_same_transaction(app, client, signup):
    tokens = await signup()
    registered = await events(app, "user.registered.v1")
    assert len(registered) == 1
    assert registered[0]["subject"] == tokens["user"]["id"]
    assert registered[0]["data"]["email"] == "ada@example.com"
    # A refused sign-up (duplicate) writes no event.
    await client.post(
        "/api/v1/auth/signup",
        json={"email": "ada@example.com", "password": "correct horse battery", "full_name": "X"},
    )
    assert len(await events(app, "user.registered.v1")) == 1


async def test_admin_assigns_roles(app, client, signup, admin, auth_header):
    root = await admin()
    ada = await signup()
    response = await client.put(
        f"/api/v1/auth/users/{ada['user']['id']}/roles",
        headers=auth_header(root),
        json={"roles": ["student", "instructor"]},
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["instructor", "student"]
    assert (await events(app, "user.updated.v1"))[-1]["data"]["roles"] == ["instructor", "student"]
    # The next token carries the new roles.
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": ada["refresh_token"]}
    )
    import jwt

    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["instructor", "student"]


async def test_only_admins_assign_roles(client, signup, auth_header):
    ada = await signup("ada@example.com")
    bob = await signup("bob@example.com")
    response = await client.put(
        f"/api/v1/auth/users/{bob['user']['id']}/roles",
        headers=auth_header(ada),
        json={"roles": ["admin"]},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_role_assignment_validates_roles_and_user(client, signup, admin, auth_header):
    root = await admin()
    ada = await signup()
    bad = await client.put(
        f"/api/v1/auth/users/{ada['user']['id']}/roles",
        headers=auth_header(root),
        json={"roles": ["god"]},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "roles"
    missing = await client.put(
        "/api/v1/auth/users/00000000-0000-0000-0000-000000000000/roles",
        headers=auth_header(root),
        json={"roles": ["student"]},
    )
    assert missing.status_code == 404


async def test_the_last_admin_cannot_drop_the_role(client, admin, auth_header):
    root = await admin()
    response = await client.put(
        f"/api/v1/auth/users/{root['user']['id']}/roles",
        headers=auth_header(root),
        json={"roles": ["student"]},
    )
    assert response.status_code == 409
