"""Development secrets are refused in production."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from payments_service.settings import Settings

PRODUCTION_DB = "postgresql+psycopg://unpuzzle_payments:real@db/unpuzzle"


def test_production_refuses_the_dev_stripe_secrets(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    with pytest.raises(ValidationError) as refused:
        Settings(database_url=PRODUCTION_DB)
    assert "stripe_api_key" in str(refused.value)
    assert "stripe_webhook_secret" in str(refused.value)


def test_production_accepts_real_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("PAYMENTS_STRIPE_API_KEY", "sk_live_real")
    monkeypatch.setenv("PAYMENTS_STRIPE_WEBHOOK_SECRET", "whsec_real")
    settings = Settings(database_url=PRODUCTION_DB)
    assert settings.stripe_api_key == SecretStr("sk_live_real")
    assert settings.stripe_api_base is None  # Stripe itself
