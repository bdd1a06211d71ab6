#!/usr/bin/env bash
# Installs the system programs the local backend needs (nginx and its echo module for the delayed
# upstream; wrk for ad-hoc baselines), and
# with --test what the test suite needs on top (Chromium, to open the HTML report for real).
# PostgreSQL server binaries come from the distribution (postgresql-15 or newer).
# Only acts as root; otherwise prints the one command a user has to run.
set -euo pipefail

missing=()
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# The delayed upstream (--upstream-ms) is an nginx with the echo module's echo_sleep.
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then
  missing+=(postgresql)
fi
bash "$(dirname "$0")/apt-install.sh" "" \
  "missing system packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" \
  ${missing[@]+"${missing[@]}"}
