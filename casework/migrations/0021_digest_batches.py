"""The steps waiting for their digest e-mail, one row per batch of the sweep (issue 11 §1).

A row per step was, for each step taken, an insert, two index entries, a foreign-key check at
commit and a delete when its digest was written. The steps still waiting when this migration runs
(a sweep that stopped before its digests) are kept: one row per level and time queued, so the
next sweep mails them as before. Reversed, each waiting step gets its row back.
"""

from django.db import migrations, models


def batches_from_steps(apps, schema_editor):
    pending = apps.get_model("casework", "EscalationDigestPending")
    batch = apps.get_model("casework", "EscalationDigestBatch")
    groups: dict = {}
    for step_id, level, queued_at in pending.objects.order_by("step_id").values_list("step_id", "level", "queued_at"):
        groups.setdefault((level, queued_at), []).append(step_id)
    batch.objects.bulk_create([batch(level=level, queued_at=queued_at, step_ids=ids)
                               for (level, queued_at), ids in groups.items()])


def steps_from_batches(apps, schema_editor):
    pending = apps.get_model("casework", "EscalationDigestPending")
    batch = apps.get_model("casework", "EscalationDigestBatch")
    pending.objects.bulk_create([
        pending(step_id=step_id, level=row.level, queued_at=row.queued_at)
        for row in batch.objects.order_by("pk") for step_id in row.step_ids
    ], ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ('casework', '0020_digest_line_without_case'),
    ]

    operations = [
        migrations.CreateModel(
            name='EscalationDigestBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('level', models.CharField(max_length=20, verbose_name='级别')),
                ('queued_at', models.DateTimeField(verbose_name='时间')),
                ('step_ids', models.JSONField(default=list, verbose_name='催督办记录')),
            ],
            options={
                'verbose_name': '待发送催督办汇总',
                'verbose_name_plural': '待发送催督办汇总',
                'indexes': [models.Index(fields=['level'], name='digest_batch_level_idx')],
            },
        ),
        migrations.RunPython(batches_from_steps, steps_from_batches),
        migrations.DeleteModel(
            name='EscalationDigestPending',
        ),
    ]
