"""The dev stack's gateway instance, through ``gateway.render`` (owned by gateway/)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.registry import JWKS_PATH, REPO

if str(REPO) not in sys.path:  # `python -m devstack` from another folder
    sys.path.insert(0, str(REPO))

from gateway.render import (
    GatewaySettings,
    merge_openapi,
    nginx_command,
    prepare_workdir,
    write_keyfile,
)


@dataclass
class Gateway:
    workdir: Path
    port: int
    #: service name -> its port on 127.0.0.1, or the ports of its replicas
    upstreams: dict[str, int | list[int]]
    settings: GatewaySettings = field(init=False)
    _jwks: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        overrides: dict[str, Any] = {}
        # Started as root, nginx's workers would run as "nobody", who may not be able to
        # reach a private dev dir (pytest's tmp dirs are 0700). The dev stack's other
        # processes run as the caller, so the workers do too, unless told otherwise.
        if os.geteuid() == 0 and not os.environ.get("GATEWAY_WORKER_USER"):
            overrides["worker_user"] = "root"
        self.settings = GatewaySettings(
            listen_port=self.port,
            upstreams={
                name: " ".join(
                    f"127.0.0.1:{port}" for port in (ports if isinstance(ports, list) else [ports])
                )
                for name, ports in self.upstreams.items()
            },
            workdir=self.workdir,
            **overrides,
        )

    @property
    def url(self) -> str:
        return f"http://{self.settings.listen_host}:{self.settings.listen_port}"

    @property
    def keys_file(self) -> Path:
        return self.settings.keys_file or self.workdir / "jwt-keys.json"

    def prepare(self, *, jwks: dict[str, Any], openapi: dict[str, dict[str, Any]]) -> Path:
        """Write nginx.conf, the keys file and the merged OpenAPI document."""
        self._jwks = jwks
        return prepare_workdir(
            self.settings, self.workdir, jwks=jwks, openapi=merge_openapi(openapi)
        )

    def command(self) -> list[str]:
        return nginx_command(self.workdir)

    def update_keys(self, jwks: dict[str, Any]) -> bool:
        """Rewrite the keys file when the JWKS changed; True when it did."""
        if jwks == self._jwks:
            return False
        write_keyfile(self.keys_file, jwks)
        self._jwks = jwks
        return True

    def healthy(self, client: httpx.Client) -> bool:
        """The gateway answers /healthz and routes to auth (when there is one)."""
        try:
            if client.get(f"{self.url}/healthz").status_code != 200:
                return False
            if "auth" in self.upstreams:
                return client.get(f"{self.url}{JWKS_PATH}").status_code == 200
        except httpx.HTTPError:
            return False
        return True
