"""a version on each course row, raised by every update (the catalog cache checks it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "courses",
        sa.Column("row_version", sa.BigInteger(), server_default="0", nullable=False),
        schema="courses",
    )
    op.execute(
        """
        CREATE FUNCTION courses.raise_row_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.row_version := OLD.row_version + 1;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER courses_raise_row_version BEFORE UPDATE ON courses.courses
        FOR EACH ROW EXECUTE FUNCTION courses.raise_row_version()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER courses_raise_row_version ON courses.courses")
    op.execute("DROP FUNCTION courses.raise_row_version()")
    op.drop_column("courses", "row_version", schema="courses")
