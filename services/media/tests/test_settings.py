"""Settings refuse inconsistent sizes and development secrets in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from media_service.settings import Settings
from unpuzzle_common.config import DevSecretInProduction


def test_chunks_smaller_than_the_stores_minimum_part_are_refused():
    with pytest.raises(ValidationError, match="s3_min_part_size"):
        Settings(chunk_size=1024 * 1024)


def test_chunks_larger_than_a_request_body_are_refused():
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(chunk_size=32 * 1024 * 1024)


def test_the_default_chunk_is_an_acceptable_s3_part():
    settings = Settings()
    assert settings.chunk_size == 8 * 1024 * 1024 >= settings.s3_min_part_size


def test_development_secrets_are_refused_in_production(monkeypatch):
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("MEDIA_DATABASE_URL", "postgresql+psycopg://u:real@db/unpuzzle")
    with pytest.raises((DevSecretInProduction, ValidationError), match="s3_access_key_id"):
        Settings()


def test_empty_endpoint_means_aws(monkeypatch):
    monkeypatch.setenv("MEDIA_S3_ENDPOINT_URL", "")
    assert Settings().s3_endpoint_url is None
