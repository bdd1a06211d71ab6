# gatewaybench — the two commands a user needs are `make bench` and `make test`.
# Both install what they need: a virtualenv in .venv from pyproject.toml's pinned versions, and
# (when root) nginx through apt; otherwise scripts/install-system-deps.sh says what to install.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= seed
BENCH_ARGS ?=
QUICK_ARGS := --users 10,20 --ramp 1 --warmup 3 --window 8 --label quick
# The io preset small: two waits (none, 100 ms) and two steps either side of the sync knees.
QUICK_ARGS_io := --upstream-ms 0,100 --users 20,60 --ramp 1 --warmup 2 --window 5 --label quick-io
GATE_BASE ?= origin/main
GATE_CAND ?= .
GATE_ARGS ?=
VALIDATE_ARGS ?=

.PHONY: help install sysdeps sysdeps-test engine bench bench-quick bench-ci validate-queueing test test-unit lint doctor clean bench-docker compose-render compose-env

help:
	@echo "make bench        the seed experiment: 4 servers x 100..700 users (about 20 min on 2 cores)"
	@echo "make bench-quick  the same matrix small (about 2 min)"
	@echo "PRESET=tuned|all  with bench or bench-quick: each server tuned, or every server x variant"
	@echo "PRESET=io         when ASGI pays off: 5 cells x upstream waits 0-300 ms (about 23 min; quick 3.5)"
	@echo "make test         lint, type checks and the whole test suite (real processes)"
	@echo "make bench-ci     the regression gate: this tree vs GATE_BASE (default origin/main)"
	@echo "make validate-queueing  the open model against M/G/1 theory, one sync worker (about 15 min)"
	@echo "make doctor       check this machine can run a bench"
	@echo "make engine       a container engine for --backend compose (as root: Podman from apt)"
	@echo "BENCH_ARGS='--servers gunicorn,uvicorn --users 50:300:50' make bench  for anything else"

$(STAMP): pyproject.toml envs/psycopg3.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -rf $(VENV)/psycopg3
	$(PY) -m pip install --quiet --no-deps --target $(VENV)/psycopg3 -r envs/psycopg3.txt
	touch $(STAMP)

install: $(STAMP)

sysdeps:
	@bash scripts/install-system-deps.sh

sysdeps-test:
	@bash scripts/install-system-deps.sh --test

engine:
	@bash scripts/install-engine.sh

bench: install sysdeps
	$(PY) -m gatewaybench run --preset $(PRESET) $(BENCH_ARGS)

bench-quick: install sysdeps
	$(PY) -m gatewaybench run --preset $(PRESET) $(or $(QUICK_ARGS_$(PRESET)),$(QUICK_ARGS)) $(BENCH_ARGS)

# The CI regression gate, locally: the working tree against GATE_BASE, in one job, both at once.
# Writes $GITHUB_STEP_SUMMARY when set; exit 0 pass, 1 regression, 3 inconclusive.
bench-ci: install sysdeps
	$(PY) -m gatewaybench gate --base $(GATE_BASE) --cand $(GATE_CAND) $(GATE_ARGS)

# The open model against queueing theory (docs/open-model.md): exit 0 when every mean is within 10 %.
validate-queueing: install sysdeps
	$(PY) scripts/validate_queueing.py $(VALIDATE_ARGS)

doctor: install sysdeps
	$(PY) -m gatewaybench doctor

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install sysdeps-test engine lint
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q -m "not integration and not e2e"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Docker (compose backend): the same matrix with every component in a container, through the
# docker SDK (a Docker or Podman engine; make engine sets one up; see docs/docker.md).
bench-docker: install engine
	$(PY) -m gatewaybench run --backend compose $(BENCH_ARGS)

# Regenerate docker-compose.yml, docker/nginx.conf and docker/postgres-init.sh from the spec.
compose-render: install
	$(PY) -m gatewaybench compose render --write

# .env with generated secrets for `docker compose` (kept if it exists; never committed).
compose-env: install
	$(PY) -m gatewaybench compose env
