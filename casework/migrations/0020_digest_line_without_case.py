"""Fewer index entries and foreign-key checks per escalation step (issue 11 §1).

A digest line no longer repeats its step's case (the column, its two identical indexes and its
foreign-key check at commit); the lines of a case are read through their steps. The digest line's
notification and the step's case lose their own index: the unique (notification, step) and
(case, clock, round, level) indexes lead with those columns and serve the same look-ups.
"""

import django.db.models.deletion
from django.db import migrations, models


def case_from_step(apps, schema_editor):
    """Reversed: each line's case again, its step's."""
    line = apps.get_model("casework", "DigestLine")
    step = apps.get_model("casework", "EscalationStep")
    line.objects.update(case_id=models.Subquery(step.objects.filter(pk=models.OuterRef("step_id")).values("case_id")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('casework', '0019_notification_body_lz4'),
    ]

    operations = [
        # Nullable first, so that reversed, the column comes back empty and is filled before it is
        # required again.
        migrations.AlterField(
            model_name='digestline',
            name='case',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='digest_lines', to='casework.case'),
        ),
        migrations.RunPython(migrations.RunPython.noop, case_from_step),
        migrations.RemoveIndex(
            model_name='digestline',
            name='digest_line_case_idx',
        ),
        migrations.RemoveField(
            model_name='digestline',
            name='case',
        ),
        migrations.AlterField(
            model_name='digestline',
            name='notification',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='digest_lines', to='casework.notification'),
        ),
        migrations.AlterField(
            model_name='escalationstep',
            name='case',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='escalation_steps', to='casework.case', verbose_name='案件'),
        ),
    ]
