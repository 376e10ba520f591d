"""Gateway configuration, read from ``GATEWAY_*`` environment variables.

Every knob the rendered nginx.conf depends on lives here, validated before it
reaches the template: a bad value should fail in Python with a clear message, not
as an ``nginx: [emerg]`` line at start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The services the gateway knows, with the public path prefixes each one serves.
#: Paths are proxied unchanged: a service serves its full public paths itself.
SERVICE_PREFIXES: dict[str, tuple[str, ...]] = {
    "auth": ("/api/v1/auth",),
    "courses": ("/api/v1/categories", "/api/v1/courses", "/api/v1/enrollments"),
    "media": ("/api/v1/media",),
    "ai": ("/api/v1/ai",),
    "payments": ("/api/v1/payments",),
    "analytics": ("/api/v1/analytics",),
}

#: Where `make up` runs each service on one machine (auth 8101 ... analytics 8106).
DEFAULT_UPSTREAMS: dict[str, str] = {
    name: f"127.0.0.1:{8101 + index}" for index, name in enumerate(SERVICE_PREFIXES)
}

_RATE = re.compile(r"^[1-9][0-9]*r/[sm]$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m)?$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
# Issuer and audience are rendered inside quoted nginx strings: keep them to URL-ish
# characters so nothing in them can be read as a variable, a quote or a directive end.
_CLAIM_VALUE = re.compile(r"^[A-Za-z0-9._:/@-]+$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_CIDR = re.compile(r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]*$")
_LOG_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


def _split_list(value: object) -> object:
    """Accept a JSON list or a comma-separated string for list-valued env vars."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class GatewaySettings(BaseSettings):
    """Everything that varies between gateway instances (dev, tests, production)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8080, ge=1, le=65535)
    #: Service name -> "host:port", or several separated by spaces (replicas: nginx
    #: balances between them). Only the services listed here are routed; the paths of
    #: the others answer 404. Env: JSON object or "auth=host:port,courses=...".
    upstreams: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_UPSTREAMS)
    )

    jwt_issuer: str = "unpuzzle-auth"
    jwt_audience: str = "unpuzzle-api"
    #: Clock skew tolerated on exp/nbf/iat. Access tokens live minutes; keep this small.
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=30)
    #: File holding the SPKI public keys jwt.js verifies with (see keys.py).
    #: Default: WORKDIR/jwt-keys.json.
    keys_file: Path | None = None

    #: Origins allowed to call the API from a browser. Env: JSON list or comma-separated.
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:3000"]
    )

    # Rate limits, as nginx rates ("20r/s", "5r/m") plus a burst allowance.
    # Dev defaults let one test client run several hundred requests a minute, while
    # the credential endpoints (signin, signup, password/forgot) stay strict.
    rate_limit_address: str = "20r/s"
    rate_limit_address_burst: int = Field(default=100, ge=0)
    rate_limit_user: str = "10r/s"
    rate_limit_user_burst: int = Field(default=50, ge=0)
    rate_limit_strict: str = "30r/m"
    rate_limit_strict_burst: int = Field(default=10, ge=0)

    # Request body limits, as nginx sizes ("1m", "512k").
    body_limit: str = "1m"
    body_limit_media_chunk: str = "16m"

    upstream_connect_timeout: str = "5s"
    upstream_read_timeout: str = "60s"
    #: The AI tutor streams answers from an LLM: give it longer between bytes.
    ai_read_timeout: str = "300s"

    #: Addresses of load balancers whose X-Forwarded-For is trusted for the client
    #: address (rate limits key on it). Empty: the TCP peer is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Directory of this instance: nginx.conf, pid, logs, temp files, keys, openapi.json.
    workdir: Path = Path(".dev/gateway")
    #: The njs module (Debian's libnginx-mod-http-js and the nginx.org images agree).
    njs_module: Path = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
    worker_processes: str = "auto"
    #: Only meaningful when nginx starts as root: the user the workers run as. They
    #: must be able to read the keys file and openapi.json in the workdir.
    worker_user: str | None = None
    error_log_level: str = "warn"
    #: Where logs go. Default: WORKDIR/access.log and WORKDIR/error.log; in a container,
    #: "/dev/stdout" and "stderr" hand them to the runtime.
    access_log: str | None = None
    error_log: str | None = None

    @field_validator("listen_host")
    @classmethod
    def _check_listen_host(cls, value: str) -> str:
        if not _HOST_PORT.match(f"{value}:1"):
            raise ValueError(f"listen_host must be an address or host name, got {value!r}")
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _parse_upstreams(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("{"):
            pairs = (item.split("=", 1) for item in _split_list(value))  # type: ignore[union-attr]
            return {name.strip(): address.strip() for name, address in pairs}
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("upstreams")
    @classmethod
    def _check_upstreams(cls, value: dict[str, str]) -> dict[str, str]:
        for name, address in value.items():
            if name not in SERVICE_PREFIXES:
                known = ", ".join(SERVICE_PREFIXES)
                raise ValueError(f"unknown service {name!r} (known: {known})")
            if not address.split() or not all(_HOST_PORT.match(a) for a in address.split()):
                raise ValueError(
                    f"upstream of {name} must be host:port (several: space-separated), "
                    f"got {address!r}"
                )
        return value

    @field_validator("cors_allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not _ORIGIN.match(origin):
                raise ValueError(f"CORS origin must be scheme://host[:port], got {origin!r}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for cidr in value:
            if not _CIDR.match(cidr):
                raise ValueError(f"trusted proxy must be an address or CIDR, got {cidr!r}")
        return value

    @field_validator("jwt_issuer", "jwt_audience")
    @classmethod
    def _check_claim_value(cls, value: str) -> str:
        if not _CLAIM_VALUE.match(value):
            raise ValueError(f"only letters, digits and ._:/@- are allowed, got {value!r}")
        return value

    @field_validator("rate_limit_address", "rate_limit_user", "rate_limit_strict")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        if not _RATE.match(value):
            raise ValueError(f"rate must look like 20r/s or 5r/m, got {value!r}")
        return value

    @field_validator("body_limit", "body_limit_media_chunk")
    @classmethod
    def _check_size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError(f"size must look like 1m or 512k, got {value!r}")
        return value

    @field_validator("upstream_connect_timeout", "upstream_read_timeout", "ai_read_timeout")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError(f"duration must look like 5s or 500ms, got {value!r}")
        return value

    @field_validator("worker_processes")
    @classmethod
    def _check_workers(cls, value: str) -> str:
        if value != "auto" and not value.isdigit():
            raise ValueError("worker_processes must be a number or 'auto'")
        return value

    @field_validator("worker_user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.match(value):
            raise ValueError(f"not a user name: {value!r}")
        return value

    @field_validator("access_log", "error_log")
    @classmethod
    def _check_log_target(cls, value: str | None) -> str | None:
        if value is not None and value != "stderr" and not _LOG_PATH.match(value):
            raise ValueError(f"log target must be 'stderr' or an absolute path, got {value!r}")
        return value

    @field_validator("error_log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = {"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}
        if value not in levels:
            raise ValueError(f"error_log_level must be one of {sorted(levels)}")
        return value


def retry_after_seconds(rate: str) -> int:
    """Seconds until a bucket limited to ``rate`` ("5r/m") admits one more request."""
    count, per = rate.removesuffix("r/s").removesuffix("r/m"), rate[-1]
    window = 60 if per == "m" else 1
    return max(1, -(-window // int(count)))  # ceiling division
