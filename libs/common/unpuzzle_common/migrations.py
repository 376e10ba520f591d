"""Alembic glue shared by the services' ``migrations/env.py``.

The version table lives inside the service's own schema, so each service's
migrations are independent of the others' and run with the service's own role.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool


def _only_own_schema(schema: str):
    def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ == "schema":
            return name == schema
        if type_ == "table":
            return name != "alembic_version"
        return True

    return include_name


def _migration_engine(url: str):
    # The service role's search_path is its schema; Alembic would then reflect that
    # schema as the "default" (None) and confuse it with the models' explicit schema.
    # Migrations name the schema everywhere, so they connect with another search_path.
    return create_engine(
        url, poolclass=pool.NullPool, connect_args={"options": "-c search_path=pg_catalog"}
    )


def run_env(target_metadata: MetaData, *, schema: str, default_url: str) -> None:
    """Body of a service's ``migrations/env.py`` (online and offline modes)."""
    config = context.config
    url = config.attributes.get("url") or default_url
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=_only_own_schema(schema),
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = _migration_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=_only_own_schema(schema),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def alembic_config(service_dir: Path, url: str) -> Config:
    """An Alembic config for the service whose folder is ``service_dir``."""
    config = Config()
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade_to_head(service_dir: Path, url: str) -> None:
    """Apply every migration of a service (what ``<service> migrate`` runs)."""
    command.upgrade(alembic_config(service_dir, url), "head")


def model_drift(url: str, target_metadata: MetaData, *, schema: str) -> list:
    """Differences between the migrated database and the models (empty when in sync).

    Each service's tests assert this is empty, so a model change without its
    migration fails CI.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = _migration_engine(url)
    try:
        with engine.connect() as connection:
            context_ = MigrationContext.configure(
                connection,
                opts={
                    "include_schemas": True,
                    "include_name": _only_own_schema(schema),
                    "version_table_schema": schema,
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context_, target_metadata))
    finally:
        engine.dispose()


def service_dir(package_file: str) -> Path:
    """The folder holding a service's ``migrations/``.

    From a source checkout it is beside the package; in an image where the package
    is installed into site-packages, it is the working directory (the image's WORKDIR).
    """
    beside = Path(package_file).resolve().parent.parent
    if (beside / "migrations").is_dir():
        return beside
    return Path.cwd()
