"""Service configuration from the environment.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``AUTH_``, ``COURSES_``...). The deployment environment itself is read from the
unprefixed ``ENV`` variable; with ``ENV=production`` every setting still holding a
development default listed in ``dev_secrets`` is refused at start-up.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretBytes, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_DB_PASSWORD = "dev-only-password"


class DevSecretInProduction(ValueError):
    """A development default secret was found while running with ENV=production."""


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set ``model_config`` with their prefix."""

    model_config = SettingsConfigDict(env_prefix="UNPUZZLE_", extra="ignore")

    #: Fields that hold secrets, mapped to their development defaults.
    dev_secrets: ClassVar[dict[str, str]] = {}

    env: Literal["development", "test", "production"] = Field(
        default="development", validation_alias=AliasChoices("ENV", "UNPUZZLE_ENV")
    )
    service_name: str = "unpuzzle"
    database_url: str = f"postgresql+psycopg://unpuzzle:{DEV_DB_PASSWORD}@127.0.0.1:5432/unpuzzle"
    db_pool_size: int = 10
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: First token of every event subject; tests use a random one to stay isolated.
    events_prefix: str = "unpuzzle"
    jwks_url: str = "http://127.0.0.1:8101/api/v1/auth/.well-known/jwks.json"
    jwt_issuer: str = "unpuzzle-auth"
    jwt_audience: str = "unpuzzle-api"
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    #: Where the worker process serves ``/healthz`` and ``/metrics``; off when unset.
    worker_host: str = "0.0.0.0"  # noqa: S104 - probes come from the kubelet, off-host
    worker_port: int | None = None
    #: Days the worker keeps published outbox rows and inbox rows. At least the 7 days the
    #: producers' streams keep events: an inbox row is what makes a replayed event a no-op.
    events_retention_days: float = Field(default=8.0, ge=7.0)
    #: Seconds between two prunings of the event tables by the worker.
    events_housekeeping_interval: float = Field(default=3600.0, gt=0)
    #: Maximum accepted request body in bytes (the gateway enforces its own, too).
    max_body_bytes: int = 1_048_576
    #: After start-up, move the start-up heap out of the cyclic garbage collector's
    #: reach (``gc.freeze``): a full collection over it paused a service ~140 ms, the
    #: catalog's p99. ``serve`` turns it on unless set; tests build many apps and leave it off.
    freeze_heap_after_startup: bool = False

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> ServiceSettings:
        if self.env != "production":
            return self
        offending = [
            name
            for name, dev_value in self.dev_secrets.items()
            if _plain(getattr(self, name)) == dev_value
        ]
        if DEV_DB_PASSWORD in self.database_url:
            offending.append("database_url")
        if offending:
            raise DevSecretInProduction(
                "development secrets refused with ENV=production: " + ", ".join(sorted(offending))
            )
        return self


def _plain(value: object) -> object:
    # A SecretStr never equals a str, which would let a dev default through unnoticed.
    if isinstance(value, SecretStr | SecretBytes):
        secret = value.get_secret_value()
        return secret.decode(errors="replace") if isinstance(secret, bytes) else secret
    return value
