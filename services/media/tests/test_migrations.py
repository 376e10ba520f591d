"""The migrations create exactly what the models describe."""

from __future__ import annotations

from media_service.models import SCHEMA, metadata
from unpuzzle_common.migrations import model_drift


def test_migrations_match_the_models(media_database_url):
    assert model_drift(media_database_url, metadata, schema=SCHEMA) == []
