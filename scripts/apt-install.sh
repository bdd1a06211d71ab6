#!/usr/bin/env bash
# apt-install.sh WHAT NOT_ROOT_LINE PACKAGE...: the project's installers (install-system-deps.sh,
# install-engine.sh) hand it what is missing. Nothing missing: nothing to do. Not root: prints
# NOT_ROOT_LINE (the one command the user has to run) and exits 2. As root: apt-get install,
# then says what was installed (for WHAT, when given). Nothing the packages would start is started (Debian starts a freshly
# installed nginx or postgresql listening on all interfaces; a policy-rc.d that denies every
# start keeps the install from leaving daemons behind, removed again if we created it), and
# apt's chatter goes to a log shown only when the install fails.
set -euo pipefail

what=$1
not_root_line=$2
shift 2
[ $# -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "gatewaybench: $not_root_line" >&2
  exit 2
fi

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
echo "gatewaybench: installed $*${what:+ ($what)}"
