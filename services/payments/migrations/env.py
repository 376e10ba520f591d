"""Alembic environment of the payments service (version table in the ``payments`` schema)."""

from payments_service.models import SCHEMA, metadata
from payments_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
