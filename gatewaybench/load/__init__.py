"""Driving Locust: it always runs in its own process (importing it monkey-patches with gevent)."""
