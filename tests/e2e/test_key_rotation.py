"""Rotating the signing key reaches the gateway before the new key signs anything."""

from __future__ import annotations

import base64
import json
import time


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def _gateway_kids(stack) -> set[str]:
    keys = json.loads((stack.dev_dir / "gateway" / "jwt-keys.json").read_text())
    return {key["kid"] for key in keys["keys"]}


def test_rotated_key_is_accepted_and_old_tokens_keep_working(stack, api):
    before = api.signup()
    old_kid = _kid(before["access_token"])
    assert old_kid in _gateway_kids(stack)

    # The new key is published at once and signs 4 s later (the publish lead).
    rotated = stack.devstack("rotate-keys", "--lead", "4")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr

    deadline = time.monotonic() + 10
    while _gateway_kids(stack) == {old_kid}:
        assert time.monotonic() < deadline, "the gateway's keys file never got the new key"
        time.sleep(0.2)
    (new_kid,) = _gateway_kids(stack) - {old_kid}

    # Refresh until a token signed with the new key comes back; every token on the way,
    # whichever key signed it, is accepted by the gateway.
    refresh_token = before["refresh_token"]
    deadline = time.monotonic() + 20
    while True:
        pair = api.refresh(refresh_token)
        assert pair.status_code == 200, pair.text
        access, refresh_token = pair.json()["access_token"], pair.json()["refresh_token"]
        me = api.http.get("/api/v1/auth/me", headers=api.bearer(access))
        assert me.status_code == 200, (_kid(access), me.text)
        if _kid(access) == new_kid:
            break
        assert time.monotonic() < deadline, "the new key never started signing"
        time.sleep(0.5)

    # A token signed with the retiring key stays valid until it expires.
    assert (
        api.http.get("/api/v1/auth/me", headers=api.bearer(before["access_token"])).status_code
        == 200
    )
