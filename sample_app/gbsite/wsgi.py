"""WSGI entry point (``gbsite.wsgi:application``) for gunicorn.

Under gunicorn's gevent worker, psycopg2 is made cooperative first: its libpq calls would
otherwise block the whole process (every greenlet) for each query. gunicorn's GeventWorker
runs ``monkey.patch_all()`` in the worker process (init_process -> patch) *before* it loads the
app (load_wsgi imports this module), so here, in the worker, gevent is already imported and
socket is patched; psycogreen then installs a wait callback that yields to gevent's hub. That
happens before Django is set up, hence before any connection is opened. (gunicorn --preload
would import this module in the arbiter, before any patching: the check below would be false and
/gbinfo would say so; Django does not work under gevent preloaded anyway, and the harness never
passes --preload.)
"""

import os
import sys

from django.core.wsgi import get_wsgi_application


def _make_psycopg2_green() -> bool:
    """Patch psycopg2 for gevent when gevent has monkey-patched this process; True if it did.

    gevent is imported only when something already imported it, so other servers never load it.
    """
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        return False
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return True


# Read by /gbinfo (polls/info.py) as "psycopg2_green".
PSYCOPG2_GREEN = _make_psycopg2_green()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gbsite.settings")

application = get_wsgi_application()
