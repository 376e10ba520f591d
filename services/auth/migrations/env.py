"""Alembic environment of the auth service (version table in the ``auth`` schema)."""

from auth_service.models import SCHEMA, metadata
from auth_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
