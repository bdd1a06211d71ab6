"""The same project with DEBUG hard-coded on, as a real public project shipped it: the harness
must see it from the running app and say so."""

from tinysite.settings import *  # noqa: F403

DEBUG = True
