#!/usr/bin/env bash
# apt-get install PACKAGES as root, for the project's installers (install-system-deps.sh,
# install-engine.sh): nothing the packages would start is started (Debian starts a freshly
# installed nginx or postgresql listening on all interfaces; a policy-rc.d that denies every
# start keeps the install from leaving daemons behind, removed again if we created it), and
# apt's chatter goes to a log shown only when the install fails.
set -euo pipefail

policy=/usr/sbin/policy-rc.d
created_policy=0
log=$(mktemp)
cleanup() {
  [ "$created_policy" = 1 ] && rm -f "$policy"
  rm -f "$log"
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "gatewaybench: installing $* failed (apt's output above)" >&2
  exit 1
fi
