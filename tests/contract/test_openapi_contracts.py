"""Each service's OpenAPI document matches the one committed under openapi/, and no
committed change broke its clients without a new ``info.version``.

A difference between the app and its document means the public API changed: if that is
intended, run ``make contracts`` and commit the new document with the change, so
reviewers and clients see the API change as a diff. ``make contracts`` refuses a change
that breaks clients (``openapi_compat.py``) unless the service's version is bumped; the
history test holds hand-edited or forced documents to the same rule.
"""

from __future__ import annotations

import copy
import difflib
import json
import socket

import pytest
import regenerate

compat = regenerate.compat

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
    document = regenerate.build_document(service)
    current = regenerate.render(document)
    if current != committed:
        name = f"tests/contract/openapi/{service}.json"
        pytest.fail(
            f"the OpenAPI document of {service} differs from {name}.\n"
            + _verdict(service, json.loads(committed), document)
            + "\n\n"
            + _diff(committed, current, name),
            pytrace=False,
        )


def _verdict(service: str, committed: dict, document: dict) -> str:
    """Whether the app's change breaks clients, and so what it takes."""
    old, new = compat.version(committed), compat.version(document)
    changes = compat.breaking_changes(committed, document)
    if not changes:
        return (
            "The change is additive (no client breaks): if it is intended, run "
            "`make contracts` and commit the result."
        )
    listed = "\n".join(f"  {change}" for change in changes)
    if old != new:
        return (
            f"The change breaks clients, and the version moves {old} → {new}: if that is "
            f"intended, run `make contracts` and commit the result. The breaks:\n{listed}"
        )
    return (
        f"The change BREAKS clients of {service} {old} (`make contracts` refuses it):\n"
        f"{listed}\n" + regenerate.bump_advice(service, old)
    )


@pytest.mark.parametrize("service", regenerate.services())
def test_committed_history_breaks_no_client_within_a_version(service: str):
    """Each committed step of the document kept its clients working, or bumped the version.

    Needs the git history (CI clones with all of it); skipped without git or in a
    shallow clone. Commits from before this rule existed are not walked.
    """
    path = regenerate.doc_path(service)
    try:
        history = list(regenerate.revisions(path))
    except regenerate.HistoryUnavailable as error:
        pytest.skip(f"cannot check the history of {path.name}: {error}")
    breaks = regenerate.breaks_within_version(history)
    if breaks:
        pytest.fail(
            f"tests/contract/openapi/{service}.json broke its clients without a new "
            f"info.version:\n" + "\n".join(map(str, breaks)) + "\n"
            f"{regenerate.bump_advice(service, compat.version(history[0].document))} "
            "Then commit the regenerated document.",
            pytrace=False,
        )


def test_a_difference_says_whether_it_needs_a_new_version():
    committed = json.loads(regenerate.doc_path("courses").read_text())
    grown = copy.deepcopy(committed)
    grown["paths"]["/api/v1/new"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    assert "additive" in _verdict("courses", committed, grown)
    broken = copy.deepcopy(committed)
    del broken["paths"]["/api/v1/categories"]
    verdict = _verdict("courses", committed, broken)
    assert "BREAKS clients of courses 1.0.0" in verdict
    assert "/api/v1/categories — path: removed" in verdict
    assert "bump VERSION in services/courses/courses_service/main.py" in verdict
    broken["info"]["version"] = "2.0.0"
    assert "the version moves 1.0.0 → 2.0.0" in _verdict("courses", committed, broken)


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
