"""Development secrets, generated on first run into ``.dev/secrets.env`` and kept.

The file holds ``NAME=value`` lines: one database password per service
(``<SERVICE>_DB_PASSWORD``) and the extra secrets the registry asks for (the auth
key-encryption secret, a Stripe webhook secret). Secrets missing from the file (a
service added later) are generated and appended; existing ones never change, since
the auth service's stored signing keys are encrypted with its secret.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from devstack.registry import Service


def db_password_name(service: str) -> str:
    return f"{service.upper()}_DB_PASSWORD"


def _generate(name: str) -> str:
    value = secrets.token_urlsafe(32)
    return f"whsec_{value}" if name == "STRIPE_WEBHOOK_SECRET" else value


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def ensure_secrets(path: Path, services: Iterable[Service]) -> tuple[dict[str, str], list[str]]:
    """Load the secrets file, generating what is missing. Returns (secrets, new names)."""
    values = read_env_file(path)
    wanted: list[str] = []
    for service in services:
        wanted.append(db_password_name(service.name))
        wanted.extend(service.secrets)
    new = [name for name in dict.fromkeys(wanted) if name not in values]
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as out:
            if fresh:
                out.write("# Development secrets of this checkout (generated; do not commit).\n")
            for name in new:
                values[name] = _generate(name)
                out.write(f"{name}={values[name]}\n")
    return values, new
