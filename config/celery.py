"""The Celery app. Its settings are the ``CELERY_*`` names in config/settings.py; the
periodic schedule lives here, in one place."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("dpp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
