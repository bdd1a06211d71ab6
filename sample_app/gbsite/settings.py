"""Django settings for the gatewaybench sample app (the tutorial "polls" project).

Everything that varies between benchmark runs comes from ``GB_*`` environment variables, which
are read exactly once, here at the top, so that the rest of the module is plain Django defaults.
"""

import logging
import math
import os
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def _env_required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(
            f"Required environment variable {name} is not set (or is empty); "
            f"export {name} before starting the sample app."
        )
    return value


def _env_optional(name: str, default: str) -> str:
    # An empty value is treated as unset so that `GB_X=` in an env file means "use the default".
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    raw = _env_optional(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be an integer, got {raw!r}."
        ) from None


def _env_float(name: str, default: float) -> float:
    raw = _env_optional(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be a number, got {raw!r}."
        ) from None


def _at_least(name: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise ImproperlyConfigured(
            f"Environment variable {name} must be >= {minimum}, got {value}."
        )
    return value


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in _env_optional(name, default).split(",") if item.strip()]


GB_SECRET_KEY = _env_required("GB_SECRET_KEY")
GB_DB_NAME = _env_optional("GB_DB_NAME", "polls")
GB_DB_USER = _env_required("GB_DB_USER")
GB_DB_PASSWORD = _env_required("GB_DB_PASSWORD")
GB_DB_HOST = _env_optional("GB_DB_HOST", "127.0.0.1")
GB_DB_PORT = _env_optional("GB_DB_PORT", "5432")
GB_CONN_MAX_AGE = _env_int("GB_CONN_MAX_AGE", 0)
# Size of Django's psycopg 3 connection pool per process (Django >= 5.1); 0 = no pool.
GB_DB_POOL_MAX = _env_int("GB_DB_POOL_MAX", 0)
GB_DB_POOL_TIMEOUT = _env_int("GB_DB_POOL_TIMEOUT", 10)
# "sync": the tutorial's views; "async": the same views on Django's async ORM (ASGI only).
GB_VIEWS = _env_optional("GB_VIEWS", "sync")
# Milliseconds of CPU work added to every request (polls/cpuwork.py); 0 = none, the default.
GB_CPU_WORK_MS = float(_env_optional("GB_CPU_WORK_MS", "0"))
if GB_VIEWS not in ("sync", "async"):
    raise ImproperlyConfigured(f"GB_VIEWS must be 'sync' or 'async', got {GB_VIEWS!r}.")
GB_ALLOWED_HOSTS = _env_list("GB_ALLOWED_HOSTS", "127.0.0.1,localhost")
# A delayed upstream API (polls/upstream.py): every polls page first makes GB_UPSTREAM_CALLS
# sequential GET {GB_UPSTREAM_URL}/sleep?s=... calls that each take GB_UPSTREAM_MS; 0 = no call.
GB_UPSTREAM_URL = _env_optional("GB_UPSTREAM_URL", "").rstrip("/")
GB_UPSTREAM_MS = _at_least("GB_UPSTREAM_MS", _env_int("GB_UPSTREAM_MS", 0), 0)
GB_UPSTREAM_CALLS = _at_least("GB_UPSTREAM_CALLS", _env_int("GB_UPSTREAM_CALLS", 1), 1)
GB_UPSTREAM_TIMEOUT_S = _env_float("GB_UPSTREAM_TIMEOUT_S", 30.0)
# Milliseconds of pg_sleep inside the vote's transaction: a database connection held while
# waiting; 0 = none, the default (the vote's queries exactly as without it).
GB_DB_WAIT_MS = _at_least("GB_DB_WAIT_MS", _env_int("GB_DB_WAIT_MS", 0), 0)
if not (math.isfinite(GB_UPSTREAM_TIMEOUT_S) and GB_UPSTREAM_TIMEOUT_S > 0):
    raise ImproperlyConfigured(
        f"GB_UPSTREAM_TIMEOUT_S must be a number of seconds > 0, got {GB_UPSTREAM_TIMEOUT_S!r}."
    )
if GB_UPSTREAM_URL and not GB_UPSTREAM_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"GB_UPSTREAM_URL must be an http:// or https:// URL, got {GB_UPSTREAM_URL!r}."
    )
if GB_UPSTREAM_MS > 0 and not GB_UPSTREAM_URL:
    raise ImproperlyConfigured(
        f"GB_UPSTREAM_MS is {GB_UPSTREAM_MS} but GB_UPSTREAM_URL is not set: "
        "set the upstream's base URL (e.g. http://127.0.0.1:41234) or GB_UPSTREAM_MS=0."
    )


class IsoTimestampFormatter(logging.Formatter):
    """Render ``%(asctime)s`` as UTC ISO 8601 with milliseconds, e.g. 2025-01-31T12:00:00.123Z.

    The harness correlates these lines with request timings, so the timestamp has to be
    unambiguous regardless of the host's local time zone.
    """

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = GB_SECRET_KEY

# Never taken from the environment: a benchmark run with debug on would measure Django's
# query logging and debug pages instead of the app.
DEBUG = False

ALLOWED_HOSTS = GB_ALLOWED_HOSTS


# The benchmark measures "Django defaults": these two lists are exactly what startproject
# generates, plus the polls app.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "polls.apps.PollsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if GB_CPU_WORK_MS > 0:
    MIDDLEWARE.insert(0, "polls.cpuwork.CpuWorkMiddleware")

ROOT_URLCONF = "gbsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "gbsite.wsgi.application"
ASGI_APPLICATION = "gbsite.asgi.application"


DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": GB_DB_NAME,
        "USER": GB_DB_USER,
        "PASSWORD": GB_DB_PASSWORD,
        "HOST": GB_DB_HOST,
        "PORT": GB_DB_PORT,
        "CONN_MAX_AGE": GB_CONN_MAX_AGE,
        # Off so that a dropped connection surfaces as an error the harness can count, rather
        # than being silently repaired with an extra round trip per request.
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {},
    }
}
if GB_DB_POOL_MAX:
    # Django requires psycopg 3 for this (and CONN_MAX_AGE = 0); it raises at start-up if not.
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": GB_DB_POOL_MAX,
        "timeout": GB_DB_POOL_TIMEOUT,
    }


AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# Every line starts with "<ISO timestamp> <LEVEL> <logger>" and unhandled exceptions keep their
# traceback, so the harness can attribute each HTTP 500 to its cause (for example a
# psycopg2 OperationalError) by scanning the app server's stderr log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "iso": {
            "()": IsoTimestampFormatter,
            "format": "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s",
        },
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "iso",
        },
    },
    "loggers": {
        # propagate=False so each record is written once, by this handler, and not also by
        # Django's default "django" logger handlers.
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
