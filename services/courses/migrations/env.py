"""Alembic environment of the courses service (version table in the ``courses`` schema)."""

from courses_service.models import SCHEMA, metadata
from courses_service.settings import Settings
from unpuzzle_common.migrations import run_env

run_env(metadata, schema=SCHEMA, default_url=Settings().database_url)
