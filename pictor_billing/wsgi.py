"""WSGI entry point (gunicorn pictor_billing.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pictor_billing.settings")
application = get_wsgi_application()
