"""Entrypoint of the gateway image: render nginx.conf, run nginx, keep the keys fresh.

1. Read the settings (``GATEWAY_*``: gateway/settings.py, plus :class:`EntrypointSettings`).
2. Fetch the auth service's JWKS, waiting up to ``GATEWAY_STARTUP_WAIT_SECONDS`` for auth
   to answer; without it nginx still starts (public routes work, tokens are refused) and
   the keys arrive with the next refresh.
3. Fetch each upstream's ``/openapi.json`` (best effort) and merge them.
4. ``gateway.render.prepare_workdir``: nginx.conf, the keys file, openapi.json.
5. Run nginx in the foreground as a child. SIGTERM/SIGINT become nginx's graceful
   shutdown (SIGQUIT); the entrypoint exits with nginx's status.
6. Meanwhile rewrite the keys file whenever the JWKS changes (every
   ``GATEWAY_KEYS_REFRESH_SECONDS``; jwt.js re-reads it per request, so no reload) and
   openapi.json when the services' documents change.

``--render-only`` stops after step 4 (to check a configuration with ``nginx -t``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.render import (
    GatewaySettings,
    InvalidJWK,
    merge_openapi,
    nginx_command,
    prepare_workdir,
    write_keyfile,
)

log = logging.getLogger("gateway.entrypoint")

JWKS_PATH = "/api/v1/auth/.well-known/jwks.json"
FETCH_TIMEOUT = 5.0


class EntrypointSettings(BaseSettings):
    """What only the container entrypoint reads (the renderer ignores these)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    #: The auth JWKS; default: the auth upstream's well-known path.
    jwks_url: str | None = None
    #: Seconds between JWKS refreshes. Keep it well under AUTH_KEY_PUBLISH_LEAD (60 s),
    #: so every gateway knows a new key before auth signs with it.
    keys_refresh_seconds: float = Field(default=15.0, gt=0)
    #: Seconds between refreshes of the merged OpenAPI document.
    openapi_refresh_seconds: float = Field(default=60.0, gt=0)
    #: How long start-up waits for the JWKS before nginx starts without keys.
    startup_wait_seconds: float = Field(default=30.0, ge=0)


def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON document (http/https only)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
        return json.load(response)


class Instance:
    """One gateway: its rendered workdir, the keys it has, the documents it merged."""

    def __init__(self, settings: GatewaySettings, options: EntrypointSettings) -> None:
        self.settings = settings
        self.options = options
        self.workdir = Path(settings.workdir).resolve()
        self.keys_file = settings.keys_file or self.workdir / "jwt-keys.json"
        self.jwks_url = options.jwks_url or self._default_jwks_url()
        self.jwks: dict[str, Any] | None = None
        self.openapi_docs: dict[str, dict[str, Any]] = {}

    def _default_jwks_url(self) -> str | None:
        auth = self.settings.upstreams.get("auth")
        return f"http://{auth}{JWKS_PATH}" if auth else None

    # -- keys ---------------------------------------------------------------------------
    def fetch_jwks(self) -> dict[str, Any] | None:
        if not self.jwks_url:
            return None
        try:
            return fetch_json(self.jwks_url)
        except (OSError, ValueError) as exc:
            log.warning("cannot fetch the JWKS from %s: %s", self.jwks_url, exc)
            return None

    def wait_for_jwks(self) -> dict[str, Any] | None:
        if not self.jwks_url:
            log.warning("no JWKS URL and no auth upstream: every token will be refused")
            return None
        deadline = time.monotonic() + self.options.startup_wait_seconds
        while True:
            jwks = self.fetch_jwks()
            if jwks is not None or time.monotonic() >= deadline:
                return jwks
            time.sleep(1.0)

    def refresh_keys(self) -> None:
        jwks = self.fetch_jwks()
        if jwks is None or jwks == self.jwks:
            return
        try:
            write_keyfile(self.keys_file, jwks)
        except InvalidJWK as exc:
            log.error("keeping the previous keys: the JWKS is invalid: %s", exc)
            return
        self.jwks = jwks
        log.info("keys file updated: kids %s", [k.get("kid") for k in jwks.get("keys", [])])

    # -- OpenAPI ------------------------------------------------------------------------
    def fetch_openapi(self) -> bool:
        """Fetch every upstream's document; True when the merged document changed."""
        changed = False
        for service, address in self.settings.upstreams.items():
            try:
                doc = fetch_json(f"http://{address}/openapi.json")
            except (OSError, ValueError) as exc:
                log.info("no OpenAPI document from %s yet: %s", service, exc)
                continue
            if self.openapi_docs.get(service) != doc:
                self.openapi_docs[service] = doc
                changed = True
        return changed

    def write_openapi(self) -> None:
        target = self.workdir / "openapi.json"
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(merge_openapi(self.openapi_docs), indent=2) + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, target)

    # -- start --------------------------------------------------------------------------
    def render(self) -> Path:
        self.jwks = self.wait_for_jwks()
        self.fetch_openapi()
        config = prepare_workdir(
            self.settings,
            self.workdir,
            jwks=self.jwks,
            openapi=merge_openapi(self.openapi_docs),
        )
        log.info(
            "rendered %s (upstreams: %s; keys: %s; openapi: %s)",
            config,
            ", ".join(self.settings.upstreams) or "none",
            "yes" if self.jwks else "not yet",
            ", ".join(self.openapi_docs) or "none yet",
        )
        return config


def run(instance: Instance) -> int:
    """Run nginx until it exits; refresh keys and documents meanwhile."""
    nginx = subprocess.Popen(nginx_command(instance.workdir))  # noqa: S603 (fixed argv)

    def graceful(signum: int, _frame: object) -> None:
        log.info("signal %s: graceful nginx shutdown", signum)
        if nginx.poll() is None:
            nginx.send_signal(signal.SIGQUIT)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, graceful)

    options = instance.options
    next_keys = time.monotonic() + _keys_interval(instance)
    next_openapi = time.monotonic() + options.openapi_refresh_seconds
    while True:
        timeout = max(0.1, min(next_keys, next_openapi) - time.monotonic())
        try:
            return nginx.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now >= next_keys:
            instance.refresh_keys()
            next_keys = now + _keys_interval(instance)
        if now >= next_openapi:
            if instance.fetch_openapi():
                instance.write_openapi()
            next_openapi = now + options.openapi_refresh_seconds


def _keys_interval(instance: Instance) -> float:
    # Until the first keys arrive, ask often: every token is refused meanwhile.
    if instance.jwks is None and instance.jwks_url:
        return min(2.0, instance.options.keys_refresh_seconds)
    return instance.options.keys_refresh_seconds


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--render-only", action="store_true", help="write the workdir and exit (no nginx)"
    )
    args = parser.parse_args(argv)
    instance = Instance(GatewaySettings(), EntrypointSettings())
    instance.render()
    if args.render_only:
        return 0
    return run(instance)


if __name__ == "__main__":
    sys.exit(main())
