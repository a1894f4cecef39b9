"""An index the serial-number prefix search can use, on each database.

`serial_number__startswith` is a LIKE 'C02A%'. PostgreSQL uses a b-tree for LIKE only under the
C collation, or with the pattern operator class (PostgreSQL docs, "Operator Classes and Operator
Families"). SQLite's LIKE is case-insensitive, so its optimisation needs an index with NOCASE
collation (SQLite docs, "The LIKE optimization"). The plain index on serial_number stays: it
orders the Devices page.
"""

from __future__ import annotations

from django.db import migrations

INDEX = "dep_accounts_depdevice_serial_prefix"
TABLE = "dep_accounts_depdevice"


def index_create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {INDEX} ON {TABLE} (serial_number varchar_pattern_ops)"
        )
    elif schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(f"CREATE INDEX {INDEX} ON {TABLE} (serial_number COLLATE NOCASE)")


def index_drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("dep_accounts", "0007_api_token_expiry")]

    operations = [migrations.RunPython(index_create, index_drop)]
