# A stand-in for python:3.11-slim-bookworm where no image registry is reachable: Debian 12's own
# Python 3.11 from the apt mirror, on a base the harness builds with mmdebstrap
# (gatewaybench/compose/images.py). docker/app.Dockerfile builds FROM it (PYTHON_IMAGE).
# Build context: this directory plus host-ca.crt, which the harness adds (the host's CA bundle).
# No `# syntax=` line: the classic builder needs nothing from a registry but the base.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

# python-is-python3: the app image runs `python -m venv`; python3-venv brings ensurepip's pip.
# curl: for health checks that probe over HTTP (the official slim image has none; nothing needs it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python-is-python3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# The machine's TLS to the package registries may go through a proxy whose CA only the host
# trusts: pip in the app image's build (and anything after it) uses the host's bundle, which
# holds the public roots too. Without a host bundle the harness passes an empty file, and the
# image's own bundle is used instead.
COPY host-ca.crt /usr/local/share/gatewaybench/host-ca.crt
RUN [ -s /usr/local/share/gatewaybench/host-ca.crt ] \
    || cp /etc/ssl/certs/ca-certificates.crt /usr/local/share/gatewaybench/host-ca.crt
ENV PIP_CERT=/usr/local/share/gatewaybench/host-ca.crt \
    LANG=C.UTF-8

CMD ["python3"]
