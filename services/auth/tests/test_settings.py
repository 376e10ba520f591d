"""Configuration refuses development secrets in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auth_service.settings import Settings


def test_production_refuses_the_dev_key_secret(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("AUTH_DATABASE_URL", "postgresql+psycopg://auth:s3cret@db/unpuzzle")
    with pytest.raises(ValidationError, match="key_encryption_secret"):
        Settings()


def test_production_accepts_real_secrets(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("AUTH_DATABASE_URL", "postgresql+psycopg://auth:s3cret@db/unpuzzle")
    monkeypatch.setenv("AUTH_KEY_ENCRYPTION_SECRET", "a long random secret from the vault")
    settings = Settings()
    assert settings.env == "production" and settings.port == 8101


def test_development_allows_the_defaults(monkeypatch):
    monkeypatch.delenv("ENV", raising=False)
    assert Settings().env == "development"
