"""Fewer index entries for the rows the system writes without a user (issue 11 §1).

The escalation sweep writes thousands of audit events and 督办单 with no actor or opener: their
foreign-key indexes now hold only the rows that name a user (partial indexes, which the look-ups by
user, Django's PROTECT check included, still use). The 督办单's origin keeps an equality index
without the LIKE (pattern) index Django added beside it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_unit_leaders_in_charge'),
        ('casework', '0021_digest_batches'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='caseevent',
            name='actor',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, to=settings.AUTH_USER_MODEL, verbose_name='操作人'),
        ),
        migrations.AlterField(
            model_name='supervisionnotice',
            name='opened_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='督办人'),
        ),
        migrations.AlterField(
            model_name='supervisionnotice',
            name='origin',
            field=models.CharField(choices=[('ladder', '催督办阶梯'), ('manual', '人工开具'), ('quality', '质量触发')], default='ladder', max_length=20, verbose_name='来源'),
        ),
        migrations.AddIndex(
            model_name='caseevent',
            index=models.Index(condition=models.Q(('actor__isnull', False)), fields=['actor'], name='event_actor_idx'),
        ),
        migrations.AddIndex(
            model_name='supervisionnotice',
            index=models.Index(condition=models.Q(('opened_by__isnull', False)), fields=['opened_by'], name='notice_opened_by_idx'),
        ),
        migrations.AddIndex(
            model_name='supervisionnotice',
            index=models.Index(fields=['origin'], name='notice_origin_idx'),
        ),
    ]
