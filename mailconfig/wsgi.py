"""WSGI entry point (gunicorn mailconfig.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailconfig.settings")
application = get_wsgi_application()
