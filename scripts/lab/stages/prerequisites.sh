# shellcheck shell=bash
# Stage: prerequisites. One actionable line per missing thing, then one failure.

debian_mirror() {
    local uri
    uri=$(debian_archive)
    [ -n "$uri" ] || die "no Debian archive in the apt sources; configure apt for Debian first"
    echo "$uri"
}

check_prerequisites() {
    local missing=0 v
    need_cmd() {
        command -v "$1" >/dev/null 2>&1 && return 0
        say "missing $1: $2"
        missing=1
    }
    need_cmd docker "apt-get install docker.io (or run scripts/setup.sh)"
    need_cmd go "install Go >= 1.25 from go.dev/dl (Kubernetes 1.35 needs it; Debian trixie's golang-1.24 is too old)"
    if command -v go >/dev/null 2>&1 && ! go_at_least 1.25; then
        say "Go $(go env GOVERSION) is too old: Kubernetes ${V_K8S[${VARIANTS[-1]}]} needs Go >= 1.25 (go.dev/dl)"
        missing=1
    fi
    need_cmd gcc "apt-get install gcc libc6-dev"
    need_cmd jq "apt-get install jq"
    need_cmd debootstrap "apt-get install -t bookworm-backports debootstrap (or run scripts/setup.sh)"
    need_cmd file "apt-get install file"
    if command -v file >/dev/null 2>&1; then
        [ -x /bin/busybox ] && [ -n "$BUSYBOX_TAG" ] && file -L /bin/busybox | grep -q 'statically linked' \
            || { say "missing a static /bin/busybox (kube-proxy, storage helper and pod network images): apt-get install busybox-static"; missing=1; }
    fi
    for v in "${VARIANTS[@]}"; do
        if [ "${V_KIND[$v]}" = debian ] && ! debian_kind_present; then
            say "missing Debian trixie's kind 0.27.0 ($v): run scripts/setup.sh (adds trixie pinned low), then apt-get install -t trixie kind"
            missing=1
        fi
        # (apt-cache takes seconds: asked only when the image is to be built)
        if [ "${V_CONTAINERD[$v]}" = sid ] && ! node_image_built "$v" \
            && [[ "$(apt-cache policy containerd 2>/dev/null)" != *" 2.1."* ]]; then
            say "apt does not offer Debian sid's containerd 2.1 ($v): run scripts/setup.sh (adds sid pinned low) and apt-get update"
            missing=1
        fi
    done
    [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/libc.a ] \
        || { say "missing static libc for pause: apt-get install libc6-dev"; missing=1; }
    [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 \
        || { say "debootstrap needs root: run as root or install sudo"; missing=1; }
    if command -v docker >/dev/null 2>&1; then
        if ! docker version >/dev/null 2>&1; then
            say "no Docker engine answers: run scripts/setup.sh (it starts dockerd)"
            missing=1
        else
            privileged_check || missing=1
        fi
    fi
    [ "$missing" = 0 ] || die "prerequisites missing (each line above says how to fix it)"
}

go_at_least() {  # go_at_least 1.25: the go command's own version is at least that
    local have
    have=$(go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
    [ -n "$have" ] && printf '%s\n%s\n' "$1" "$have" | sort -V -C
}

privileged_check() {  # kind runs every node with --privileged
    local out
    if out=$(docker run --rm --privileged --entrypoint /bin/true "$(any_local_image)" 2>&1); then
        return 0
    fi
    if grep -q 'unable to apply caps' <<<"$out"; then
        say "the Docker engine cannot start privileged containers (this host lacks CAP_SYS_RESOURCE); fix: sudo pkill dockerd && bash scripts/setup.sh (it starts dockerd with a runtime that drops it; where systemd runs Docker: bash scripts/setup.sh; sudo systemctl restart docker)"
    else
        say "the Docker engine cannot start a privileged container: $(head -n 1 <<<"$out")"
    fi
    return 1
}

any_local_image() {  # a small local image that has /bin/true (setup.sh builds this one)
    local img=${KINDREG_TEST_IMAGE:-kindreg-test/busybox:1.0}
    docker image inspect "$img" >/dev/null 2>&1 || bash "$REPO/pytest_kindreg/data/build-images.sh" >&2
    echo "$img"
}

# Stage: host adaptations. Said once per build; each is applied where it is needed (the node
# image's own adaptations are part of its key: see adaptations in context.sh).
host_adaptations() {
    local v
    [ -d /lib/modules ] || { say "host adaptation: /lib/modules is missing; creating it (kind bind-mounts it)"; $SUDO mkdir -p /lib/modules; }
    for v in "${VARIANTS[@]}"; do say "node image adaptations for this host, $v: $(adaptations "$v")"; done
    if cap_sys_resource_missing; then
        say "host adaptation: no CAP_SYS_RESOURCE here; the Docker engine's default runtime is $(docker info -f '{{.DefaultRuntime}}' 2>/dev/null) (scripts/setup.sh sets kindreg-runc)"
    fi
}
