"""The outbox bodies are compressed with lz4 instead of pglz on PostgreSQL 14+ (issue 11 §1).

An escalation digest lists every case of a rung: at 10,000 due cases its text and HTML bodies are
some 15 MB, which pglz took ~0.1 s of the backend's CPU to compress; lz4 takes a third of that
(and reads back faster when the e-mail is sent). Only rows written from now on are compressed
with lz4 (PostgreSQL reads both). Nothing is done on SQLite, on PostgreSQL before 14, or on a
server built without lz4 (the column keeps pglz); reversed, the columns return to the server's
default method.
"""

from django.db import migrations, transaction

COLUMNS = ("body", "html_body")


def _compression(apps, schema_editor, method: str) -> None:
    """``SET COMPRESSION method`` on the outbox body columns, where the server supports it."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    table = schema_editor.quote_name(apps.get_model("casework", "Notification")._meta.db_table)
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            for column in COLUMNS:
                cursor.execute(f"ALTER TABLE {table} ALTER COLUMN {schema_editor.quote_name(column)} "
                               f"SET COMPRESSION {method}")
    except Exception as exc:  # a server built without lz4: "compression method lz4 not supported"
        if "not supported" not in str(exc):
            raise


def lz4(apps, schema_editor) -> None:
    """Compress new outbox bodies with lz4 (PostgreSQL 14+ with lz4; otherwise nothing)."""
    _compression(apps, schema_editor, "lz4")


def default(apps, schema_editor) -> None:
    """Give the outbox bodies back the server's default compression method."""
    _compression(apps, schema_editor, "default")


class Migration(migrations.Migration):

    dependencies = [
        ("casework", "0018_merge_20261203_0440"),
    ]

    operations = [
        migrations.RunPython(lz4, default),
    ]
