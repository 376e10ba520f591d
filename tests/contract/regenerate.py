"""Regenerate the committed OpenAPI documents (``make contracts``).

For each service under ``services/`` (``services/<name>/<name>_service/main.py``), the
app is built with ``create_app()`` — building must not connect to anything, so the
infrastructure URLs point at a closed port while it runs — and ``app.openapi()`` is
written to ``tests/contract/openapi/<name>.json``: pretty-printed, keys sorted, so a
change to a service's API shows up as a readable diff in review.

Within one ``info.version`` a document may only grow. A change that breaks its clients
(``openapi_compat.py`` says which) is **refused**: that service's document is left as it
is and the command fails, listing the breaks. A deliberate break is made by bumping the
version the service creates its app with (``VERSION`` in
``services/<name>/<name>_service/main.py``) — there is no ``--force``: the version is the
override, and CI walks the committed history with the same rule (``revisions``,
``breaks_within_version``), so a hand-edited document fails there too.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVICES_DIR = REPO / "services"
DOCS_DIR = HERE / "openapi"


def _sibling(name: str) -> ModuleType:
    """``tests/contract/<name>.py``, loaded once (this file runs as a script and is loaded
    by path from the tests, so neither a package nor sys.path can be relied on)."""
    qualified = f"contract_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, HERE / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[qualified]


compat = _sibling("openapi_compat")
#: Commits that lack this file predate the version rule: the history walk stops there.
GATE = (HERE / "openapi_compat.py").relative_to(REPO).as_posix()

#: Nothing listens here: a service that connects while building its app fails loudly.
CLOSED = "127.0.0.1:9"


def services() -> list[str]:
    """Names of the services in this checkout."""
    return sorted(
        path.name
        for path in SERVICES_DIR.iterdir()
        if (path / f"{path.name}_service" / "main.py").is_file()
    )


def doc_path(service: str) -> Path:
    return DOCS_DIR / f"{service}.json"


@contextlib.contextmanager
def offline_env(service: str) -> Iterator[None]:
    """Point the service's database, NATS and Redis at a closed port while building."""
    prefix = f"{service.upper()}_"
    values = {
        f"{prefix}DATABASE_URL": f"postgresql+psycopg://nobody:nothing@{CLOSED}/nowhere",
        f"{prefix}NATS_URL": f"nats://{CLOSED}",
        f"{prefix}REDIS_URL": f"redis://{CLOSED}/0",
        f"{prefix}JWKS_URL": f"http://{CLOSED}/jwks.json",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_document(service: str) -> dict[str, Any]:
    """The OpenAPI document of ``service`` as its code describes it now."""
    with offline_env(service):
        module = importlib.import_module(f"{service}_service.main")
        app = module.create_app()
        return app.openapi()


def version_file(service: str) -> str:
    """Where ``service`` sets the version its app (and so its document) has."""
    return f"services/{service}/{service}_service/main.py"


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- Writing: only what keeps the version's promise ---------------------------------------


def refused_changes(committed: dict[str, Any] | None, document: dict[str, Any]) -> list[Any]:
    """The breaks that keep ``document`` from replacing ``committed`` ([] when it may).

    A break is allowed only together with a new ``info.version``.
    """
    if committed is None or compat.version(committed) != compat.version(document):
        return []
    return compat.breaking_changes(committed, document)


@dataclass(frozen=True)
class Outcome:
    """What ``write_document`` did: created, updated, unchanged — or refused, and why."""

    status: str
    changes: list[Any] = field(default_factory=list)  # openapi_compat.Change, when refused


def write_document(path: Path, document: dict[str, Any]) -> Outcome:
    """Write ``document`` to ``path`` unless it breaks clients of the one there."""
    text = render(document)
    if not path.exists():
        path.write_text(text)
        return Outcome("created")
    committed = path.read_text()
    if committed == text:
        return Outcome("unchanged")
    changes = refused_changes(json.loads(committed), document)
    if changes:
        return Outcome("refused", changes)
    path.write_text(text)
    return Outcome("updated")


def bump_advice(service: str, current: str) -> str:
    """What to do about a break of ``service`` at version ``current``."""
    major, dot, _ = current.partition(".")
    example = f" (e.g. {current} → {int(major) + 1}.0.0)" if major.isdigit() and dot else ""
    return (
        f"If the break is intended, bump VERSION in {version_file(service)}{example} and run "
        "`make contracts` again; otherwise keep the API compatible (tests/contract/README.md)."
    )


def refusal_message(service: str, path: Path, outcome: Outcome) -> str:
    """How ``make contracts`` explains a refused document, and the way out."""
    breaks = "\n".join(f"  {change}" for change in outcome.changes)
    current = compat.version(json.loads(path.read_text()))
    return (
        f"refused {path.name}: these changes break clients of {service} {current}:\n"
        f"{breaks}\n" + bump_advice(service, current)
    )


def main() -> int:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    current = services()
    refused: list[str] = []
    for service in current:
        path = doc_path(service)
        outcome = write_document(path, build_document(service))
        print(f"{outcome.status} {path.relative_to(REPO)}")
        if outcome.status == "refused":
            refused.append(refusal_message(service, path, outcome))
    for stale in sorted(DOCS_DIR.glob("*.json")):
        if stale.stem not in current:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO)} (no such service)")
    if refused:
        print("\n\n".join(refused), file=sys.stderr)
        return 1
    return 0


# -- The committed history, for CI ---------------------------------------------------------


class HistoryUnavailable(Exception):
    """There is no git history to read: no git, not a checkout, or a shallow clone."""


@dataclass(frozen=True)
class Revision:
    """A document as one commit (or the working tree) has it."""

    label: str  # "working tree", or the commit's short id and subject
    document: dict[str, Any]


@dataclass(frozen=True)
class Break:
    """A step of a document's history that broke clients under one ``info.version``."""

    older: Revision
    newer: Revision
    changes: list[Any]  # openapi_compat.Change

    def __str__(self) -> str:
        head = (
            f"{self.older.label} → {self.newer.label}, both {compat.version(self.newer.document)}:"
        )
        return "\n  ".join([head, *map(str, self.changes)])


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as error:
        raise HistoryUnavailable("git is not installed") from error


def revisions(path: Path, since: str | None = GATE) -> Iterator[Revision]:
    """The document at ``path``, newest first, as far back as the rule has watched it.

    First the working tree when it differs from HEAD (a change not committed yet), then
    the document as each commit on HEAD's first-parent line that changed it left it (a
    merge is one step). The walk ends where the document was created, or — with
    ``since``, a path from the repository's root — after the first commit that lacks
    that file: that commit's document is the baseline the rule started from, and what
    came before it was never held to the rule.

    Raises HistoryUnavailable outside a git checkout and in a shallow clone (whose oldest
    commit would pass for the document's creation).
    """
    path = path.resolve()
    top = _git(path.parent, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise HistoryUnavailable(f"not a git checkout: {top.stderr.strip()}")
    root = Path(top.stdout.strip()).resolve()
    if _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        raise HistoryUnavailable("a shallow clone; `git fetch --unshallow` to check the history")
    relative = path.relative_to(root).as_posix()
    at_head = _git(root, "show", f"HEAD:{relative}")
    if path.exists() and (at_head.returncode != 0 or path.read_text() != at_head.stdout):
        yield Revision("working tree", json.loads(path.read_text()))
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        return  # no commit yet
    log = _git(root, "log", "--first-parent", "--format=%H %s", "HEAD", "--", relative)
    if log.returncode != 0:
        raise HistoryUnavailable(f"git log failed: {log.stderr.strip()}")
    for line in log.stdout.splitlines():
        commit, _, subject = line.partition(" ")
        shown = _git(root, "show", f"{commit}:{relative}")
        if shown.returncode != 0:
            return  # deleted here: what came before is another document
        yield Revision(f"{commit[:10]} ({subject[:60]})", json.loads(shown.stdout))
        if since and _git(root, "cat-file", "-e", f"{commit}:{since}").returncode != 0:
            return


def breaks_within_version(history: Iterable[Revision]) -> list[Break]:
    """The steps of ``history`` (newest first) that broke clients under one version.

    Walks back from the newest revision while ``info.version`` stays the same: a version
    change is what allows a break, so the walk ends there.
    """
    found: list[Break] = []
    newer: Revision | None = None
    for older in history:
        if newer is not None:
            if compat.version(older.document) != compat.version(newer.document):
                break
            changes = compat.breaking_changes(older.document, newer.document)
            if changes:
                found.append(Break(older, newer, changes))
        newer = older
    return found


if __name__ == "__main__":
    sys.exit(main())
