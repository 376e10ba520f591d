"""The caller's sessions: listing and revoking signed-in devices."""

from __future__ import annotations


async def test_sessions_lists_each_sign_in_and_flags_the_current_one(
    client, signup, signin, auth_header
):
    await signup()
    laptop = (await signin(**{"User-Agent": "laptop"})).json()
    await signin(**{"User-Agent": "phone"})
    response = await client.get("/api/v1/auth/sessions", headers=auth_header(laptop))
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3  # signup opened one too
    current = [s for s in items if s["current"]]
    assert len(current) == 1 and current[0]["user_agent"] == "laptop"


async def test_revoking_a_session_kills_its_refresh_token(client, signup, signin, auth_header):
    await signup()
    laptop = (await signin(**{"User-Agent": "laptop"})).json()
    phone = (await signin(**{"User-Agent": "phone"})).json()
    items = (await client.get("/api/v1/auth/sessions", headers=auth_header(laptop))).json()["items"]
    phone_session = next(s for s in items if s["user_agent"] == "phone")
    deleted = await client.delete(
        f"/api/v1/auth/sessions/{phone_session['id']}", headers=auth_header(laptop)
    )
    assert deleted.status_code == 204
    refused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert refused.status_code == 401
    remaining = (await client.get("/api/v1/auth/sessions", headers=auth_header(laptop))).json()[
        "items"
    ]
    assert phone_session["id"] not in [s["id"] for s in remaining]


async def test_another_users_session_is_not_found(client, signup, auth_header):
    ada = await signup("ada@example.com")
    bob = await signup("bob@example.com")
    bob_sessions = (await client.get("/api/v1/auth/sessions", headers=auth_header(bob))).json()[
        "items"
    ]
    response = await client.delete(
        f"/api/v1/auth/sessions/{bob_sessions[0]['id']}", headers=auth_header(ada)
    )
    assert response.status_code == 404
    still = await client.post("/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert still.status_code == 200


async def test_malformed_session_id_is_422(client, signup, auth_header):
    tokens = await signup()
    response = await client.delete("/api/v1/auth/sessions/not-a-uuid", headers=auth_header(tokens))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "session_id"
