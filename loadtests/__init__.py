"""Locust scenarios; imported only by `locust -f` (Locust monkey-patches the interpreter)."""
