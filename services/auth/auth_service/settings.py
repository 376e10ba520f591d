"""Configuration of the auth service (environment variables prefixed ``AUTH_``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings

DEV_KEY_ENCRYPTION_SECRET = "dev-only-key-encryption-secret-change-me"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")
    dev_secrets: ClassVar[dict[str, str]] = {"key_encryption_secret": DEV_KEY_ENCRYPTION_SECRET}

    service_name: str = "auth"
    host: str = "127.0.0.1"
    port: int = 8101
    jwks_url: str = "http://127.0.0.1:8101/api/v1/auth/.well-known/jwks.json"

    #: Lifetime of access tokens (seconds); DESIGN.md caps it at 15 minutes.
    access_token_ttl: int = 900
    #: Lifetime of a refresh token and of an idle session (seconds).
    refresh_token_ttl: int = 30 * 24 * 3600
    #: Secret that encrypts the private signing keys at rest.
    key_encryption_secret: str = DEV_KEY_ENCRYPTION_SECRET
    #: A new signing key is published in the JWKS this long before it signs anything,
    #: so gateways and services have learned it by then.
    key_publish_lead: int = 60

    #: argon2id cost; the defaults are argon2-cffi's RFC 9106 "low memory" profile.
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4

    #: Failed sign-ins allowed per account, and per client address, in the window.
    signin_max_failures_per_account: int = 5
    signin_max_failures_per_address: int = 20
    signin_failure_window: int = 900

    password_reset_ttl: int = 3600
    #: Reset mails sent per address per hour at most (the answer is 202 regardless).
    password_reset_per_hour: int = 3
    #: Where reset links point (the web client's page).
    public_base_url: str = "http://localhost:8080"

    #: SMTP for outgoing mail; when no host is set, mails go to ``mail_dir`` and the log.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str = "Unpuzzle <no-reply@unpuzzle.local>"
    mail_dir: Path = Path(".dev/mail")
