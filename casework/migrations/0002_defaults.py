"""An append-only audit table on PostgreSQL.

Default rows (role groups, deadline policies, the escalation schedule) are created after every
migrate by ``casework.defaults.defaults_ensure`` (post_migrate), so a flushed database gets them back.
"""

from django.db import migrations

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION casework_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'casework_caseevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER casework_caseevent_append_only
    BEFORE UPDATE OR DELETE ON casework_caseevent
    FOR EACH ROW EXECUTE FUNCTION casework_event_append_only();
"""
def append_only(apps, schema_editor):
    """On PostgreSQL, refuse UPDATE and DELETE of audit events in the database itself."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def drop_append_only(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS casework_caseevent_append_only ON casework_caseevent")


class Migration(migrations.Migration):
    dependencies = [
        ("casework", "0001_initial"),
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(append_only, drop_append_only),
    ]
