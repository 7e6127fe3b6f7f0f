import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from dpp import metrics, tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the handler loads the middleware list, which the Django instrumentation extends.
tracing.configure("dpp-api")
application = get_wsgi_application()
metrics.initialize(list(settings.DPP_PACKS))
