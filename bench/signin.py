"""Sign-in throughput with the production argon2id cost, straight to the auth service.

Not through the gateway: it limits credential endpoints per client address on
purpose (``GATEWAY_RATE_LIMIT_STRICT``, 5 per minute by default), which would cap
this at a handful of requests. Only *failed* sign-ins are throttled by auth itself,
and every sign-in here succeeds. Each one costs an argon2id verify, a session row
(refresh-token family) and a signed access token; the hash dominates.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx
from argon2 import PasswordHasher

from bench.accounts import Account, sign_up
from bench.loadgen import LoadResult, Request, run_load
from bench.progress import log

PHASE = "signin"
SIGNIN = "/api/v1/auth/signin"


@dataclass
class Argon2Cost:
    time_cost: int
    memory_cost_kib: int
    parallelism: int
    hash_ms: list[float]
    verify_ms: list[float]

    @property
    def hash_median_ms(self) -> float:
        return statistics.median(self.hash_ms)

    @property
    def verify_median_ms(self) -> float:
        return statistics.median(self.verify_ms)

    def describe(self) -> str:
        return (
            f"argon2id t={self.time_cost}, m={self.memory_cost_kib} KiB "
            f"({self.memory_cost_kib // 1024} MiB), p={self.parallelism}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "time_cost": self.time_cost,
            "memory_cost_kib": self.memory_cost_kib,
            "parallelism": self.parallelism,
            "hash_ms": self.hash_ms,
            "verify_ms": self.verify_ms,
            "hash_median_ms": self.hash_median_ms,
            "verify_median_ms": self.verify_median_ms,
        }


def auth_argon2_parameters() -> tuple[int, int, int]:
    """The cost the auth service uses: its Settings, as this environment configures it."""
    from auth_service.settings import Settings

    s = Settings()
    return s.argon2_time_cost, s.argon2_memory_cost, s.argon2_parallelism


def measure_hash(samples: int) -> Argon2Cost:
    """Time hashes and verifies one at a time, in this process, nothing else running."""
    t, m, p = auth_argon2_parameters()
    hasher = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)
    password = "Bench-load-Pa55phrase!"
    hasher.hash(password)  # first call pays for page faults of the 64 MiB
    hashes, verifies = [], []
    encoded = ""
    for _ in range(samples):
        start = time.perf_counter()
        encoded = hasher.hash(password)
        hashes.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        hasher.verify(encoded, password)
        verifies.append((time.perf_counter() - start) * 1000)
    cost = Argon2Cost(t, m, p, hashes, verifies)
    log(
        PHASE,
        f"one hash alone: {cost.hash_median_ms:.1f} ms (median of {samples})",
        parameters=cost.describe(),
        verify_ms=round(cost.verify_median_ms, 1),
    )
    return cost


async def make_accounts(auth_url: str, count: int) -> list[Account]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        accounts = [await sign_up(client, auth_url, f"signin{i}") for i in range(count)]
    log(PHASE, f"{count} accounts signed up")
    return accounts


async def check_signin(auth_url: str, account: Account) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(
            auth_url + SIGNIN, json={"email": account.email, "password": account.password}
        )
    if response.status_code != 200:
        raise RuntimeError(f"signin answered {response.status_code}: {response.text[:300]}")


async def run(
    *,
    tool: str,
    auth_url: str,
    accounts: list[Account],
    connections: int,
    duration: float,
    wrk_threads: int,
) -> LoadResult:
    await check_signin(auth_url, accounts[0])
    bodies = [
        json.dumps({"email": a.email, "password": a.password}, separators=(",", ":")).encode()
        for a in accounts
    ]
    return await run_load(
        tool,
        Request(
            auth_url + SIGNIN,
            method="POST",
            headers={"Content-Type": "application/json"},
            bodies=bodies,
        ),
        label=f"signin c={connections}",
        connections=connections,
        duration=duration,
        phase=PHASE,
        request_timeout=30.0,
        wrk_threads=wrk_threads,
    )
