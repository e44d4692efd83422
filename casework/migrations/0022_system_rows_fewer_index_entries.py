"""Fewer index entries for the rows the system writes (issue 11 §1).

The 督办单's origin keeps an equality index without the LIKE (pattern) index Django added beside
it. (The partial actor/opener indexes of the events and 督办单 the sweep writes without a user are
in 0025, which keeps the foreign keys as they are.)
"""

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
            model_name='supervisionnotice',
            name='origin',
            field=models.CharField(choices=[('ladder', '催督办阶梯'), ('manual', '人工开具'), ('quality', '质量触发')], default='ladder', max_length=20, verbose_name='来源'),
        ),
        migrations.AddIndex(
            model_name='supervisionnotice',
            index=models.Index(fields=['origin'], name='notice_origin_idx'),
        ),
    ]
