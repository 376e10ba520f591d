"""Fixtures: a real nginx running the rendered gateway in front of an echo upstream.

One shared instance (session scope) serves most tests; tests of rate limits and
error paths start their own small instances through ``start_gateway``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.render import prepare_workdir
from gateway.settings import SERVICE_PREFIXES
from gateway.tests.support import (
    SAMPLE_OPENAPI,
    EchoUpstream,
    Gateway,
    SigningKey,
    gateway_settings,
    jwks,
)


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory: render and start an instance; all are stopped at the end of the session."""
    started: list[Gateway] = []

    def start(upstreams: dict[str, str], keys: dict[str, Any], **overrides: Any) -> Gateway:
        workdir = tmp_path_factory.mktemp("gateway")
        settings = gateway_settings(workdir, upstreams, **overrides)
        prepare_workdir(settings, workdir, jwks=keys, openapi=SAMPLE_OPENAPI)
        gateway = Gateway(workdir, settings).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def es_key() -> SigningKey:
    return SigningKey.es256()


@pytest.fixture(scope="session")
def rs_key() -> SigningKey:
    return SigningKey.rs256()


@pytest.fixture(scope="session")
def gateway(start_gateway: Any, upstream: EchoUpstream, es_key: SigningKey, rs_key: SigningKey):
    """The shared instance: every service routed to the echo upstream, dev-like limits."""
    every_service = dict.fromkeys(SERVICE_PREFIXES, upstream.address)
    return start_gateway(every_service, jwks(es_key, rs_key))


@pytest.fixture
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as http:
        yield http
