#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for pytest-kindreg: Debian packages, a running Docker
# engine, the images the tests need (built offline), and the package itself.
# Idempotent: what is already there is kept. Needs root (or sudo) for apt-get and dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file -L /bin/busybox 2>/dev/null | grep -q static \
    || missing+=(busybox-static)
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v file >/dev/null 2>&1 || missing+=(file)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's docker-registry package starts a registry service on :5000 on every interface;
# pytest-kindreg only needs its binary (to build registry:2), so keep that service off.
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
    $SUDO systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

if ! docker version >/dev/null 2>&1; then
    echo "setup: no Docker engine answers; starting dockerd"
    $SUDO sh -c 'nohup dockerd >/var/log/kindreg-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker version >/dev/null 2>&1 && break
        sleep 1
    done
    docker version >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/kindreg-dockerd.log" >&2; exit 1; }
fi

bash pytest_kindreg/data/build-images.sh
# --- containerd binaries for the config tests (begin) ---
# The containerd config tests run Debian's containerd 1.7 (trixie) and 2.x (sid), unpacked into
# ~/.cache/pytest-kindreg-test (never installed over the host's containerd), against kind's node
# config from kind's Go module. Fetched once; on a machine without apt or network they skip (or
# fail under --kindreg-require docker) and say why.
if [ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debian-archive-keyring >/dev/null || true
fi
python3 -m tests.integration.containerd_harness fetch \
    || echo "setup: note: could not fetch the containerd binaries or kind's node config (see above)"
# --- containerd binaries for the config tests (end) ---
python3 -m pip install -q -e ".[test,lint]" 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -c "import pytest_kindreg" && echo "setup: done"
command -v kind >/dev/null 2>&1 || echo "setup: note: kind is not on PATH; kind-level tests and examples will skip (install kind to run them)"
