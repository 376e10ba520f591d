"""Alembic environment of the media service (version table in the ``media`` schema)."""

from media_service.models import SCHEMA, metadata
from media_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
