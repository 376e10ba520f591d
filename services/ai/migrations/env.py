"""Alembic environment of the AI service (version table in the ``ai`` schema)."""

from ai_service.models import SCHEMA, metadata
from ai_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
