#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for pytest-kindreg: Debian packages, a running Docker
# engine, the images the tests need (built offline), and the package itself.
# Idempotent: what is already there is kept. Needs root (or sudo) for apt-get and dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/host.sh
. scripts/lab/host.sh
# shellcheck source=venv.sh
. scripts/venv.sh

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# The kind lab (scripts/kind-lab.sh) takes kind 0.27 from trixie and containerd 2.1 from sid:
# add those suites from the Debian archive this machine already uses, pinned low, so that
# nothing else is upgraded by accident.
lab_sources=/etc/apt/sources.list.d/kindreg-lab.sources
lab_sources_changed=0
if [ "${KINDREG_SKIP_LAB:-0}" != 1 ] && [ ! -f "$lab_sources" ]; then
    mirror=$(debian_archive)
    if [ -n "$mirror" ]; then
        echo "setup: adding Debian bookworm-backports, trixie and sid to apt, pinned low (for the kind lab)"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports trixie sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" | $SUDO tee "$lab_sources" >/dev/null
        printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n\nPackage: *\nPin: release n=trixie\nPin-Priority: 100\n\nPackage: *\nPin: release n=sid\nPin-Priority: 50\n' \
            | $SUDO tee /etc/apt/preferences.d/kindreg-lab >/dev/null
        lab_sources_changed=1
    else
        echo "setup: note: no Debian archive in the apt sources; the kind lab cannot be built here"
    fi
fi

missing=()
command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file -L /bin/busybox 2>/dev/null | grep -q static \
    || missing+=(busybox-static)
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v jq >/dev/null 2>&1 || missing+=(jq)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ -f "$lab_sources" ]; then
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap/bookworm-backports)
    debian_kind_present || missing+=(kind/trixie)
    command -v gcc >/dev/null 2>&1 && [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(gcc libc6-dev)
fi
if [ ${#missing[@]} -gt 0 ] || [ "$lab_sources_changed" = 1 ]; then
    echo "setup: installing ${missing[*]:-nothing new (apt lists refreshed)}"
    $SUDO apt-get update -qq
    # Without recommends: they would add what nobody here needs (criu and its python3-protobuf into
    # the system Python, needrestart's apt hook, apparmor).
    [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's docker-registry package starts a registry service on :5000 on every interface;
# pytest-kindreg only needs its binary (to build registry:2), so keep that service off.
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
    $SUDO systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

# Host adaptation: where the capability bounding set lacks CAP_SYS_RESOURCE (bit 24), runc
# cannot start privileged containers, and kind runs every node privileged. Such a host gets a
# default runtime that removes that capability from the OCI spec before calling runc.
daemon_json=/etc/docker/daemon.json
runtime_changed=0
if cap_sys_resource_missing; then
    wrapper=/usr/local/libexec/kindreg/runc
    if ! cmp -s scripts/lab/runc-drop-sys-resource "$wrapper" 2>/dev/null; then
        $SUDO install -D -m 0755 scripts/lab/runc-drop-sys-resource "$wrapper"
    fi
    current=$( [ -s "$daemon_json" ] && cat "$daemon_json" || echo '{}')
    wanted=$(jq -S --arg path "$wrapper" '.runtimes["kindreg-runc"] = {path: $path} | .["default-runtime"] = "kindreg-runc"' <<<"$current")
    if [ "$(jq -S . <<<"$current")" != "$wanted" ]; then
        echo "setup: host adaptation: no CAP_SYS_RESOURCE here; Docker's default runtime becomes $wrapper (drops it, then runs runc)"
        $SUDO mkdir -p /etc/docker
        echo "$wanted" | $SUDO tee "$daemon_json" >/dev/null
        runtime_changed=1
    fi
fi
# kind bind-mounts /lib/modules into every node.
[ -d /lib/modules ] || { echo "setup: host adaptation: creating /lib/modules (kind mounts it)"; $SUDO mkdir -p /lib/modules; }

if docker version >/dev/null 2>&1 && [ "$runtime_changed" = 1 ]; then
    echo "setup: the running Docker engine cannot start privileged containers until it restarts with the new default runtime; fix: sudo pkill dockerd && bash scripts/setup.sh (where systemd runs Docker: sudo systemctl restart docker)" >&2
    exit 1
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

# The package and its test/lint extras go into a virtualenv, never into the system interpreter:
# the active one ($VIRTUAL_ENV), else .venv in this checkout (created here).
venv=$(kindreg_venv)
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating the virtualenv $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
"$venv/bin/python" -m tests.integration.containerd_harness fetch \
    || echo "setup: note: could not fetch the containerd binaries or kind's node config (see above)"
# --- containerd binaries for the config tests (end) ---
# Quiet when it works; a failed install prints pip's output and stops the set-up (venv.sh).
pip_install "$venv/bin/python" -e ".[test,lint,release,docs]"
"$venv/bin/python" -c "import pytest_kindreg" && echo "setup: done (virtualenv: $venv)"
# The offline kind lab: node images built here, since none can be pulled (scripts/kind-lab.sh).
if [ "${KINDREG_SKIP_LAB:-0}" = 1 ]; then
    echo "setup: KINDREG_SKIP_LAB=1: no kind lab; kind-level tests and examples need kind and a node image of your own"
else
    bash scripts/kind-lab.sh build
fi
