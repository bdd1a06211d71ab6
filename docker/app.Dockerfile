# syntax=docker/dockerfile:1
# The image of the app servers and of Locust for the compose backend (docker-compose.yml and
# `gatewaybench run --backend compose`). Every version comes from the files the local .venv is
# installed from: pyproject.toml's exact pins and envs/psycopg3.txt.
# The base is a variable: where no registry is reachable, the harness builds an equivalent from the
# apt mirror (docker/local/python.Dockerfile) and passes it here.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv

COPY pyproject.toml envs/psycopg3.txt docker/requirements.py /tmp/build/
# The runtime pins only (docker/requirements.py drops the harness's report libraries); psycopg 3
# goes to its own directory, on PYTHONPATH for psycopg3 cells only, exactly as in .venv.
RUN python /tmp/build/requirements.py /tmp/build/pyproject.toml > /tmp/build/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/build/requirements.txt \
    && /opt/venv/bin/pip install --no-deps --target /opt/venv/psycopg3 -r /tmp/build/psycopg3.txt \
    && rm -rf /tmp/build

# An unprivileged user; /records (the harness's per-step records, copied out after each step)
# and /results (the compose file's Locust CSV, a named volume) are its own.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /records /results \
    && chown app /records /results

COPY sample_app /app/sample_app
COPY loadtests /app/loadtests

USER app
WORKDIR /app/sample_app
