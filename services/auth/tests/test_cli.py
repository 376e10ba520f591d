"""The auth command line: create-admin is idempotent, rotate-keys adds a key."""

from __future__ import annotations

from sqlalchemy import func, select

from auth_service.cli import main
from auth_service.models import signing_keys, users


def configure(monkeypatch, settings) -> None:
    monkeypatch.setenv("AUTH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTH_ARGON2_MEMORY_COST", "8192")
    monkeypatch.setenv("AUTH_ARGON2_TIME_COST", "1")


async def test_create_admin_twice_makes_one_admin(app, monkeypatch, settings, signin, capsys):
    configure(monkeypatch, settings)
    import asyncio

    args = ["create-admin", "--email", "Boss@Example.com", "--password", "correct horse battery"]
    await asyncio.to_thread(main, args)
    await asyncio.to_thread(main, args)
    out = capsys.readouterr().out
    assert "created admin boss@example.com" in out and "updated admin boss@example.com" in out
    async with app.state.auth.sessions() as session:
        rows = (
            await session.execute(select(users.c.roles).where(users.c.email == "boss@example.com"))
        ).all()
    assert [r.roles for r in rows] == [["admin"]]
    assert (await signin("boss@example.com")).status_code == 200


async def test_create_admin_promotes_an_existing_account(
    app, monkeypatch, settings, signup, capsys
):
    configure(monkeypatch, settings)
    import asyncio

    await signup("teacher@example.com", role="instructor")
    await asyncio.to_thread(
        main, ["create-admin", "--email", "teacher@example.com", "--password", "whatever it is now"]
    )
    async with app.state.auth.sessions() as session:
        roles = await session.scalar(
            select(users.c.roles).where(users.c.email == "teacher@example.com")
        )
    assert roles == ["admin", "instructor"]


async def test_rotate_keys_adds_a_signing_key(app, monkeypatch, settings):
    configure(monkeypatch, settings)
    import asyncio

    await asyncio.to_thread(main, ["rotate-keys", "--lead", "0"])
    async with app.state.auth.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(signing_keys))
        retiring = await session.scalar(
            select(func.count())
            .select_from(signing_keys)
            .where(signing_keys.c.retired_at.is_not(None))
        )
    assert (total, retiring) == (2, 1)
