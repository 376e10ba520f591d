"""Forgotten passwords: mail with a single-use expiring token, then reset."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from auth_service.models import password_resets

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def mails(settings) -> list[str]:
    folder = settings.mail_dir
    return [p.read_text() for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def token_from(mail: str) -> str:
    return re.search(r"The reset token is:\s+(\S+)", mail).group(1)


async def forgot(client, email: str):
    return await client.post("/api/v1/auth/password/forgot", json={"email": email})


async def reset(client, token: str, new_password: str = NEW_PASSWORD):
    return await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
    )


async def test_forgot_answers_202_and_mails_only_existing_accounts(client, signup, settings):
    await signup()
    unknown = await forgot(client, "nobody@example.com")
    known = await forgot(client, "ada@example.com")
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    sent = mails(settings)
    assert len(sent) == 1 and "To: ada@example.com" in sent[0]
    assert "reset-password?token=" in sent[0]


async def test_reset_sets_the_password_and_signs_out_everywhere(client, signup, signin, settings):
    tokens = await signup()
    await forgot(client, "ada@example.com")
    response = await reset(client, token_from(mails(settings)[0]))
    assert response.status_code == 204
    assert (await signin(password=PASSWORD)).status_code == 401
    assert (await signin(password=NEW_PASSWORD)).status_code == 200
    old_session = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert old_session.status_code == 401


async def test_reset_token_is_single_use(client, signup, settings):
    await signup()
    await forgot(client, "ada@example.com")
    token = token_from(mails(settings)[0])
    assert (await reset(client, token)).status_code == 204
    again = await reset(client, token, "yet another passphrase")
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "token"


async def test_expired_reset_token_is_refused(app, client, signup, settings):
    await signup()
    await forgot(client, "ada@example.com")
    async with app.state.auth.sessions() as session, session.begin():
        await session.execute(
            update(password_resets).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await reset(client, token_from(mails(settings)[0]))
    assert response.status_code == 422


async def test_weak_new_password_keeps_the_token_usable(client, signup, settings):
    await signup()
    await forgot(client, "ada@example.com")
    token = token_from(mails(settings)[0])
    weak = await reset(client, token, "short")
    assert weak.status_code == 422
    assert weak.json()["errors"][0]["field"] == "new_password"
    assert (await reset(client, token)).status_code == 204


async def test_reset_mails_are_limited_per_hour(client, signup, settings):
    await signup()
    for _ in range(settings.password_reset_per_hour + 2):
        assert (await forgot(client, "ada@example.com")).status_code == 202
    assert len(mails(settings)) == settings.password_reset_per_hour
