"""Regenerate the committed OpenAPI documents (``make contracts``).

For each service under ``services/`` (``services/<name>/<name>_service/main.py``), the
app is built with ``create_app()`` — building must not connect to anything, so the
infrastructure URLs point at a closed port while it runs — and ``app.openapi()`` is
written to ``tests/contract/openapi/<name>.json``: pretty-printed, keys sorted, so a
change to a service's API shows up as a readable diff in review.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO / "services"
DOCS_DIR = Path(__file__).resolve().parent / "openapi"

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


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    current = services()
    for service in current:
        path = doc_path(service)
        text = render(build_document(service))
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        print(f"{'updated' if changed else 'unchanged'} {path.relative_to(REPO)}")
    for stale in sorted(DOCS_DIR.glob("*.json")):
        if stale.stem not in current:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO)} (no such service)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
