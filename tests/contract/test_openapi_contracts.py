"""Each service's OpenAPI document matches the one committed under openapi/.

A difference means the public API changed: if that is intended, run
``make contracts`` and commit the new document with the change, so reviewers and
clients see the API change as a diff.
"""

from __future__ import annotations

import difflib
import importlib.util
import socket
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "contract_regenerate", Path(__file__).with_name("regenerate.py")
)
assert _spec and _spec.loader
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)

MAX_DIFF_LINES = 150


def _diff(committed: str, current: str, name: str) -> str:
    lines = list(
        difflib.unified_diff(
            committed.splitlines(),
            current.splitlines(),
            f"committed {name}",
            f"current {name}",
            lineterm="",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    return "\n".join(lines)


def test_every_service_has_a_contract_and_every_contract_a_service():
    services = set(regenerate.services())
    assert services, "no service found under services/"
    committed = {path.stem for path in regenerate.DOCS_DIR.glob("*.json")}
    assert committed == services, (
        f"missing: {sorted(services - committed)}, stale: {sorted(committed - services)}; "
        "run `make contracts`"
    )


@pytest.mark.parametrize("service", regenerate.services())
def test_openapi_matches_the_committed_contract(service: str):
    path = regenerate.doc_path(service)
    assert path.exists(), f"{path} is missing: run `make contracts` and commit it"
    committed = path.read_text()
    current = regenerate.render(regenerate.build_document(service))
    if current != committed:
        name = f"tests/contract/openapi/{service}.json"
        pytest.fail(
            f"the OpenAPI document of {service} differs from {name}.\n"
            f"If the API change is intended, run `make contracts` and commit the result.\n\n"
            + _diff(committed, current, name),
            pytrace=False,
        )


def test_building_an_app_connects_to_nothing(monkeypatch):
    """create_app() only builds; the lifespan connects. Any socket use here is a bug."""
    opened: list[object] = []

    def refuse(self, address, *args, **kwargs):
        opened.append(address)
        raise OSError(f"create_app tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for service in regenerate.services():
        document = regenerate.build_document(service)
        assert document["paths"], f"{service} documents no path"
    assert opened == []
