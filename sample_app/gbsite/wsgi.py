"""WSGI entry point (``gbsite.wsgi:application``) for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gbsite.settings")

application = get_wsgi_application()
