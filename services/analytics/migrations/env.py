"""Alembic environment of the analytics service (version table in the ``analytics`` schema)."""

from analytics_service.models import SCHEMA, metadata
from analytics_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
