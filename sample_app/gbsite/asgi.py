"""ASGI entry point (``gbsite.asgi:application``) for uvicorn, daphne and hypercorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gbsite.settings")

application = get_asgi_application()
