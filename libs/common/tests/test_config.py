"""ServiceSettings: per-service env prefixes, and dev secrets refused in production."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import DEV_DB_PASSWORD, ServiceSettings

DEV_STRIPE_KEY = "sk_dev_only"
REAL_DATABASE_URL = "postgresql+psycopg://unpuzzle_courses:s3cr3t-from-k8s@db:5432/unpuzzle"


class CoursesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COURSES_", extra="ignore")
    dev_secrets: ClassVar[dict[str, str]] = {"stripe_key": DEV_STRIPE_KEY}

    service_name: str = "courses"
    stripe_key: str = DEV_STRIPE_KEY


class PaymentsSettings(ServiceSettings):
    """A service that keeps its secret in a SecretStr, as pydantic recommends."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore")
    dev_secrets: ClassVar[dict[str, str]] = {"webhook_secret": "whsec_dev"}

    webhook_secret: SecretStr = SecretStr("whsec_dev")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable of the machine running the tests leaks into these settings."""
    for name in ("ENV", "UNPUZZLE_ENV", "REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for prefix in ("COURSES_", "PAYMENTS_", "UNPUZZLE_"):
        for field in ("DATABASE_URL", "REDIS_URL", "DB_POOL_SIZE", "STRIPE_KEY", "WEBHOOK_SECRET"):
            monkeypatch.delenv(prefix + field, raising=False)


def test_subclass_reads_variables_with_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSES_REDIS_URL", "redis://cache:6379/3")
    monkeypatch.setenv("COURSES_DB_POOL_SIZE", "4")
    monkeypatch.setenv("COURSES_STRIPE_KEY", "sk_live_from_env")

    settings = CoursesSettings()

    assert settings.redis_url == "redis://cache:6379/3"
    assert settings.db_pool_size == 4
    assert settings.stripe_key == "sk_live_from_env"


def test_subclass_ignores_unprefixed_and_other_services_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://wrong:1/0")
    monkeypatch.setenv("UNPUZZLE_REDIS_URL", "redis://wrong:2/0")
    monkeypatch.setenv("PAYMENTS_REDIS_URL", "redis://wrong:3/0")

    assert CoursesSettings().redis_url == ServiceSettings.model_fields["redis_url"].default


def test_environment_is_read_from_unprefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "test")

    assert CoursesSettings().env == "test"


def test_production_refuses_dev_secret_and_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("COURSES_DATABASE_URL", REAL_DATABASE_URL)

    with pytest.raises(ValidationError) as refused:
        CoursesSettings()

    assert "stripe_key" in str(refused.value)
    assert "database_url" not in str(refused.value)


def test_production_refuses_dev_database_password_and_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("COURSES_STRIPE_KEY", "sk_live_from_env")

    with pytest.raises(ValidationError) as refused:
        CoursesSettings()

    assert "database_url" in str(refused.value)
    assert DEV_DB_PASSWORD in CoursesSettings.model_fields["database_url"].default


def test_production_refuses_dev_secret_held_in_secret_str(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", REAL_DATABASE_URL)

    with pytest.raises(ValidationError) as refused:
        PaymentsSettings()

    assert "webhook_secret" in str(refused.value)


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("COURSES_DATABASE_URL", REAL_DATABASE_URL)
    monkeypatch.setenv("COURSES_STRIPE_KEY", "sk_live_from_env")

    settings = CoursesSettings()

    assert settings.env == "production"
    assert settings.stripe_key == "sk_live_from_env"


@pytest.mark.parametrize("env", ["development", "test"])
def test_dev_secrets_are_accepted_outside_production(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("ENV", env)

    settings = CoursesSettings()

    assert settings.stripe_key == DEV_STRIPE_KEY
    assert DEV_DB_PASSWORD in settings.database_url


def test_unknown_environment_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENV", "prod")

    with pytest.raises(ValidationError):
        CoursesSettings()
