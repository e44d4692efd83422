"""Outbox per-recipient delivery and retry time; keyed audit chain with sealed heads and pgtrigger.

The hand-written append-only trigger of 0002 is replaced by the triggers declared on ``CaseEvent``
(django-pgtrigger: UPDATE/DELETE and TRUNCATE refused). Existing events are sealed again with the
keyed hash (``CASEWORK_AUDIT_KEY``) in their order, and each case's chain head is recorded: what
was in the database before this migration is trusted once, as it stands.
"""

from django.db import migrations, models
import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations

from casework.models import chain_head_mac, event_hash


def reseal_existing_chains(apps, schema_editor):
    """Drop the old trigger; re-seal every existing chain with the keyed hash; record the heads."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS casework_caseevent_append_only ON casework_caseevent")
        schema_editor.execute("DROP FUNCTION IF EXISTS casework_event_append_only()")
    CaseEvent = apps.get_model("casework", "CaseEvent")
    AuditChainHead = apps.get_model("casework", "AuditChainHead")
    case_ids = CaseEvent.objects.order_by().values_list("case_id", flat=True).distinct()
    for case_id in case_ids.iterator():
        events = list(CaseEvent.objects.filter(case_id=case_id).order_by("seq"))
        prev = ""
        for event in events:  # sequence numbers are kept: a gap found later is reported
            event.prev_hash = prev
            event.hash = event_hash(event)
            prev = event.hash
        CaseEvent.objects.bulk_update(events, ["prev_hash", "hash"])
        count = events[-1].seq
        AuditChainHead.objects.create(
            case_id=case_id, event_count=count, head_hash=prev,
            mac=chain_head_mac(case_id=case_id, event_count=count, head_hash=prev),
        )


class Migration(migrations.Migration):

    dependencies = [
        ('casework', '0004_calendar_ladder'),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditChainHead',
            fields=[
                ('case', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='chain_head', serialize=False, to='casework.case')),
                ('event_count', models.PositiveIntegerField(verbose_name='记录条数')),
                ('head_hash', models.CharField(max_length=64, verbose_name='末条哈希')),
                ('mac', models.CharField(max_length=64)),
            ],
            options={
                'verbose_name': '审计链头',
                'verbose_name_plural': '审计链头',
            },
        ),
        migrations.CreateModel(
            name='AuditVerificationRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(verbose_name='开始时间')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='结束时间')),
                ('cases_checked', models.PositiveIntegerField(default=0, verbose_name='核验案件数')),
                ('events_checked', models.PositiveIntegerField(default=0, verbose_name='核验记录数')),
                ('failure_count', models.PositiveIntegerField(default=0, verbose_name='异常数')),
                ('failures', models.JSONField(blank=True, default=list, verbose_name='异常明细')),
                ('anchor', models.CharField(blank=True, max_length=500, verbose_name='外部锚定文件')),
            ],
            options={
                'verbose_name': '审计链核验',
                'verbose_name_plural': '审计链核验',
                'ordering': ['-started_at'],
            },
        ),
        migrations.CreateModel(
            name='NotificationRecipient',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('address', models.CharField(max_length=254, verbose_name='收件人')),
                ('status', models.CharField(choices=[('pending', '待发送'), ('sent', '已送达'), ('deferred', '暂时拒收(将重试)'), ('refused', '拒收(不再自动重试)')], default='pending', max_length=10, verbose_name='投递状态')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='尝试次数')),
                ('last_code', models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='最近应答码')),
                ('last_error', models.TextField(blank=True, verbose_name='最近错误')),
                ('sent_at', models.DateTimeField(blank=True, null=True, verbose_name='送达时间')),
            ],
            options={
                'verbose_name': '收件人投递',
                'verbose_name_plural': '收件人投递',
                'ordering': ['notification', 'address'],
            },
        ),
        migrations.AddField(
            model_name='notification',
            name='next_attempt_at',
            field=models.DateTimeField(blank=True, db_index=True, null=True, verbose_name='下次重试'),
        ),
        migrations.RunPython(reseal_existing_chains, migrations.RunPython.noop),
        pgtrigger.migrations.AddTrigger(
            model_name='caseevent',
            trigger=pgtrigger.compiler.Trigger(name='caseevent_append_only', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;", hash='b47ea8a5519ad9bc6a1e85c50886c9940ed71932', operation='UPDATE OR DELETE', pgid='pgtrigger_caseevent_append_only_1d815', table='casework_caseevent', when='BEFORE')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='caseevent',
            trigger=pgtrigger.compiler.Trigger(name='caseevent_no_truncate', sql=pgtrigger.compiler.UpsertTriggerSql(func="RAISE EXCEPTION 'pgtrigger: Cannot truncate % table', TG_TABLE_NAME;", hash='f30fc84888a57c98b164d4b6b6ba3d6edba459ef', level='STATEMENT', operation='TRUNCATE', pgid='pgtrigger_caseevent_no_truncate_28baf', table='casework_caseevent', when='BEFORE')),
        ),
        migrations.AddField(
            model_name='notificationrecipient',
            name='notification',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='casework.notification'),
        ),
        migrations.AddConstraint(
            model_name='notificationrecipient',
            constraint=models.UniqueConstraint(fields=('notification', 'address'), name='delivery_unique_address'),
        ),
    ]
