"""Gateway overhead: ``GET /api/v1/auth/me`` through nginx vs. straight to auth.

Same token, same load (connections, duration), one after the other, alternating the
order each round so drift (a warming cache, a noisy neighbour) hits both sides.
What the gateway adds is its njs JWT check (signature, exp, iss, aud), the rate-limit
bookkeeping, header rewriting and one more proxied HTTP/1.1 hop (upstream keepalive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.accounts import Account
from bench.loadgen import LoadResult, Request, run_load
from bench.progress import log, warn

ME = "/api/v1/auth/me"
PHASE = "gateway"
TARGET_P50_MS = 1.0


@dataclass
class Comparison:
    connections: int
    rounds: list[dict[str, LoadResult]] = field(default_factory=list)

    def side(self, name: str) -> list[LoadResult]:
        return [r[name] for r in self.rounds if name in r]

    def mean(self, name: str, attr: str) -> float:
        values = [getattr(r, attr) for r in self.side(name)]
        return sum(values) / len(values) if values else math.nan

    @property
    def p50_overhead(self) -> float:
        return self.mean("gateway", "p50") - self.mean("direct", "p50")

    @property
    def p99_overhead(self) -> float:
        return self.mean("gateway", "p99") - self.mean("direct", "p99")

    @property
    def all_ok(self) -> bool:
        return all(r.ok for rnd in self.rounds for r in rnd.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "rounds": [{k: v.as_dict() for k, v in rnd.items()} for rnd in self.rounds],
            "mean": {
                side: {a: self.mean(side, a) for a in ("rps", "p50", "p90", "p99")}
                for side in ("direct", "gateway")
            },
            "p50_overhead_ms": self.p50_overhead,
            "p99_overhead_ms": self.p99_overhead,
            "all_2xx": self.all_ok,
        }


async def check_routes(gateway_url: str, auth_url: str, account: Account) -> None:
    """Both paths must answer 200 before anything is timed (else say why)."""
    headers = {"Authorization": f"Bearer {account.access_token}"}
    async with httpx.AsyncClient(timeout=5.0) as client:
        for name, url in (("direct", auth_url + ME), ("gateway", gateway_url + ME)):
            response = await client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(
                    f"GET {ME} {name} answered {response.status_code}: {response.text[:300]}"
                )
            log(PHASE, f"{name} route answers 200", url=url)


def broken_signature(token: str) -> str:
    """The same token with one character of its signature changed (verify must fail)."""
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return ".".join((head, payload, signature[:middle] + swapped + signature[middle + 1 :]))


async def breakdown(
    *,
    tool: str,
    gateway_url: str,
    account: Account,
    connections: int,
    duration: float,
    wrk_threads: int,
) -> list[LoadResult]:
    """Where the gateway's time goes: nginx alone, and the JWT check without the proxy.

    ``/healthz`` is answered by njs without looking at a token; ``/me`` with a token
    whose signature does not verify is answered 401 by the gateway after the whole
    check (keys file, key import, ECDSA verify), without reaching auth.
    """
    bad = {"Authorization": f"Bearer {broken_signature(account.access_token)}"}
    cases = [
        ("gateway /healthz (no JWT, no proxy)", gateway_url + "/healthz", {}, 200),
        ("gateway /me bad signature (JWT check, 401, no proxy)", gateway_url + ME, bad, 401),
    ]
    results = []
    async with httpx.AsyncClient(timeout=5.0) as client:
        for label, url, headers, expected in cases:
            status = (await client.get(url, headers=headers)).status_code
            if status != expected:
                warn(PHASE, f"{label}: answered {status}, expected {expected}; skipped")
                continue
            result = await run_load(
                tool,
                Request(url, headers=headers),
                label=f"{label} c={connections}",
                connections=connections,
                duration=duration,
                phase=PHASE,
                wrk_threads=wrk_threads,
            )
            result.label = label
            # The 401s are the expected answer here, not failures.
            if expected != 200:
                result.extra["expected_status"] = expected
                result.extra["answers_not_2xx"] = result.non_2xx
                result.non_2xx = 0
            results.append(result)
    return results


async def run(
    *,
    tool: str,
    gateway_url: str,
    auth_url: str,
    account: Account,
    connections: list[int],
    duration: float,
    rounds: int,
    warmup: float,
    wrk_threads: int,
) -> list[Comparison]:
    await check_routes(gateway_url, auth_url, account)
    headers = {"Authorization": f"Bearer {account.access_token}"}
    urls = {"direct": auth_url + ME, "gateway": gateway_url + ME}
    total = len(connections) * rounds * 2
    done = 0
    results = []
    for conns in connections:
        if warmup > 0:
            for side in ("direct", "gateway"):
                await run_load(
                    tool,
                    Request(urls[side], headers=headers),
                    label=f"warm-up {side} c={conns}",
                    connections=conns,
                    duration=warmup,
                    phase=PHASE,
                    wrk_threads=wrk_threads,
                )
        comparison = Comparison(conns)
        for index in range(rounds):
            order = ("direct", "gateway") if index % 2 == 0 else ("gateway", "direct")
            current: dict[str, LoadResult] = {}
            for side in order:
                current[side] = await run_load(
                    tool,
                    Request(urls[side], headers=headers),
                    label=f"{side} c={conns} round {index + 1}/{rounds}",
                    connections=conns,
                    duration=duration,
                    phase=PHASE,
                    wrk_threads=wrk_threads,
                )
                done += 1
                log(PHASE, f"gateway phase {100 * done // total}%", percent=100 * done // total)
            comparison.rounds.append(current)
        if not comparison.all_ok:
            warn(
                PHASE,
                "some requests did not answer 2xx: with the gateway's default rate limits "
                "this measures its 429 page (the stack started by the benchmark raises them)",
                connections=conns,
            )
        log(
            PHASE,
            f"c={conns}: p50 gateway - direct = {comparison.p50_overhead:.3f} ms",
            target_ms=TARGET_P50_MS,
        )
        results.append(comparison)
    return results
