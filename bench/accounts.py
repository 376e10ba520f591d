"""Benchmark accounts, signed up directly at the auth service (not through the gateway,
whose strict per-address limit on credential endpoints is there on purpose)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

PASSWORD = "Bench-load-Pa55phrase!"


@dataclass
class Account:
    email: str
    password: str
    access_token: str


async def sign_up(
    client: httpx.AsyncClient, auth_url: str, tag: str, *, role: str = "student"
) -> Account:
    email = f"bench-{tag}-{secrets.token_hex(4)}@example.com"
    response = await client.post(
        f"{auth_url}/api/v1/auth/signup",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": f"Bench {tag}",
            "role": role,
        },
    )
    if response.status_code != 201:
        raise RuntimeError(f"signup failed: {response.status_code} {response.text[:300]}")
    return Account(email=email, password=PASSWORD, access_token=response.json()["access_token"])
