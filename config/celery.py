"""The Celery application: configuration from Django settings (CELERY_*), tasks from every app.

Production settings unless DJANGO_SETTINGS_MODULE says otherwise (scripts/run.sh sets local).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("casework")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
