"""The migrations create exactly what the models describe."""

from __future__ import annotations

from analytics_service.models import SCHEMA, metadata
from unpuzzle_common.migrations import model_drift


def test_migrations_match_the_models(analytics_database_url):
    assert model_drift(analytics_database_url, metadata, schema=SCHEMA) == []
