#!/usr/bin/env bash
# A container engine for the compose backend (`make engine`; bench-docker and test run it).
# Silent when one answers already (DOCKER_HOST, or a Docker daemon on /var/run/docker.sock), or
# when Podman and what it needs here are installed. Otherwise, as root, installs them from apt:
#   podman runc netavark aardvark-dns  the engine: Debian 12's crun refuses some kernels' cgroup
#                                      layout, runc works; netavark + aardvark-dns: networks with
#                                      service-name DNS
#   iptables                           netavark's NAT rules (without it: "No such file or
#                                      directory" on every network)
#   mmdebstrap                         a Debian base image from the apt mirror, where no image
#                                      registry is reachable (gatewaybench/compose/images.py)
# The harness starts its own Podman API service on a private socket with its own
# containers.conf (gatewaybench/compose/host.py): this script creates no /var/run/docker.sock
# and leaves /etc/containers as the packages install it.
# Not root and nothing there: prints the one command to run, exits 2.
set -euo pipefail

PACKAGES=(podman runc netavark aardvark-dns iptables mmdebstrap)

ping_unix() {
  command -v curl >/dev/null 2>&1 \
    && curl -fsS --max-time 5 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1
}

# DOCKER_HOST is the user's choice: it counts only if it answers (the harness would refuse it).
docker_host_answers() {
  [ -n "${DOCKER_HOST:-}" ] || return 1
  if command -v docker >/dev/null 2>&1 && timeout 10 docker version >/dev/null 2>&1; then
    return 0
  fi
  case "$DOCKER_HOST" in
    unix://*) ping_unix "${DOCKER_HOST#unix://}" ;;
    *) timeout 10 "${PYTHON:-python3}" -c 'import docker; docker.from_env().ping()' >/dev/null 2>&1 ;;
  esac
}

installed() {
  case "$1" in
    # Helpers podman runs from its own directory, not from PATH.
    netavark | aardvark-dns) [ -x "/usr/lib/podman/$1" ] || [ -x "/usr/libexec/podman/$1" ] ;;
    # sbin is not on every user's PATH.
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

if docker_host_answers || { [ -S /var/run/docker.sock ] && ping_unix /var/run/docker.sock; }; then
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done
# --no-install-recommends (apt-install.sh): podman recommends buildah and rootless extras
# (slirp4netns, uidmap, fuse-overlayfs); the harness runs none of them.
bash "$(dirname "$0")/apt-install.sh" "the container engine for --backend compose" \
  "no container engine: install one with: sudo apt-get install -y --no-install-recommends ${missing[*]} (or set DOCKER_HOST)" \
  ${missing[@]+"${missing[@]}"}
