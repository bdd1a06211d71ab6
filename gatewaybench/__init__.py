"""gatewaybench: how many users does a Django app serve under WSGI vs ASGI servers, and why."""

__version__ = "0.1.0"
