"""Default data: role groups, deadline policies, the escalation schedule and an append-only audit table."""

from django.db import migrations

# Source of the lengths: DESIGN.md §4 (1 working day to sign for; 3 for a consultation; 10–15 for
# complaints and reports). Editable in the admin afterwards.
POLICIES = [
    ("consult", 1, 3),
    ("help", 1, 5),
    ("suggest", 1, 10),
    ("complain", 1, 15),
    ("report", 1, 15),
    ("other", 1, 10),
]

def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    from accounts.roles import ROLE_PERMISSIONS

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )

    DeadlinePolicy = apps.get_model("casework", "DeadlinePolicy")
    for message_type, sign_for, reply in POLICIES:
        DeadlinePolicy.objects.get_or_create(
            message_type=message_type, defaults={"sign_for_days": sign_for, "reply_days": reply}
        )

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name="催督办巡检 escalation sweep",
        defaults={"task": "casework.escalation_sweep", "interval": every, "enabled": True},
    )


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
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RunPython(append_only, drop_append_only),
    ]
