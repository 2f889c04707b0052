# shellcheck shell=bash
# The lab's build context, as kind's pkg/build/nodeimage has one (buildContext): where things
# go, the pinned versions, the variants (variants.tsv), logging, named stages and the cache keys.
# Every stage module (scripts/lab/stages/*.sh) works from it. Needs REPO (the checkout) and
# scripts/lab/host.sh.

LAB=${KINDREG_LAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindreg-lab}
# Another name lets a lab be rebuilt and tried while a test run still uses the current images.
IMAGE_REPO=${KINDREG_LAB_IMAGE_REPO:-kindreg-lab/node}

CRICTL_VERSION=v1.34.0          # cri-tools v1.32.0 and v1.35.0 are not served by the module proxy
LPP_VERSION=v0.0.30             # rancher local-path-provisioner, as in kind v0.27-v0.33
# Images the lab's manifests name (imported under exactly these names into every node).
LPP_IMAGE=docker.io/kindreg-lab/local-path-provisioner:$LPP_VERSION
BUSYBOX_TAG=$( { /bin/busybox 2>/dev/null || true; } | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')
HELPER_IMAGE=docker.io/kindreg-lab/local-path-helper:busybox-${BUSYBOX_TAG:-unknown}
NET_IMAGE=docker.io/kindreg-lab/kindreg-net:busybox-${BUSYBOX_TAG:-unknown}
# Part of every cache key below the Go builds: bump it when the way images are put together
# (build_image_archive, build_addon_archive, kube_proxy_root, assemble_base, finish_variant)
# changes.
LAB_REVISION=2

# ---------------------------------------------------------------------------------------------
# logging, failure, clean-up
say() { echo "kind-lab: $*" >&2; }
die() { echo "kind-lab: $*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# What a failed or interrupted build leaves is removed on exit (containers, work dirs).
BUILD_CONTAINERS=()
BUILD_DIRS=()
cleanup() {
    local rc=$? c d
    [ "$rc" = 0 ] || [ -z "$STAGE_PATH" ] || echo "kind-lab: failed in [$STAGE_PATH]" >&2
    for c in "${BUILD_CONTAINERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    for d in "${BUILD_DIRS[@]}"; do $SUDO rm -rf "$d"; done
}
trap cleanup EXIT

# stage NAME CMD...: one named step of the build, run, then logged with its time. Steps nest
# (a stage's function may run stages): the log names the whole path, e.g.
#   kind-lab: [node image kindreg-lab/node:v1.35.8-containerd2.2 / node base / kind's files] 1 s
STAGE_PATH=""
stage() {
    local name=$1 parent=$STAGE_PATH started=$SECONDS
    shift
    STAGE_PATH=${parent:+$parent / }$name
    "$@"  # never in a condition: errexit must stay on inside it
    say "[$STAGE_PATH] $((SECONDS - started)) s"
    STAGE_PATH=$parent
}

# ---------------------------------------------------------------------------------------------
# the variants: one row each in variants.tsv, read into one array per column
VARIANTS_TABLE="$REPO/scripts/lab/stages/variants.tsv"
VARIANTS=()
declare -gA V_K8S=() V_KIND=() V_KIND_BASE=() V_CONTAINERD=()
load_variants() {
    local name k8s kind base containerd extra
    while read -r name k8s kind base containerd extra; do
        case "$name" in ''|'#'*) continue ;; esac
        if [ -z "$containerd" ] || [ -n "$extra" ]; then
            die "$VARIANTS_TABLE: row '$name' must have 5 columns (variant kubernetes kind-cli kind-base containerd)"
        fi
        [ -z "${V_K8S[$name]:-}" ] || die "$VARIANTS_TABLE: variant $name is there twice"
        VARIANTS+=("$name")
        V_K8S[$name]=$k8s
        V_KIND[$name]=$kind
        V_KIND_BASE[$name]=$base
        V_CONTAINERD[$name]=$containerd
    done <"$VARIANTS_TABLE"
    [ ${#VARIANTS[@]} -gt 0 ] || die "$VARIANTS_TABLE: no variant"
}
load_variants

known_variant() { [ -n "${V_K8S[$1]:-}" ] || die "unknown variant $1 (variants: ${VARIANTS[*]})"; }
variant_image() { known_variant "$1"; echo "$IMAGE_REPO:${V_K8S[$1]}-$1"; }
variant_kind() {
    known_variant "$1"
    if [ "${V_KIND[$1]}" = debian ]; then echo /usr/bin/kind; else echo "$LAB/bin/kind-${V_KIND[$1]}/kind"; fi
}
# The pytest options of a variant: its kind CLI and node image, and the strategies its Kubernetes
# cannot serve left out (deselected, never skipped): workload_identity needs 1.34.
options_line() {
    known_variant "$1"
    local line="--kindreg-kind-bin=$(variant_kind "$1") --kindreg-node-image=$(variant_image "$1")"
    if [ "$(k8s_minor "${V_K8S[$1]}")" -lt 34 ]; then line+=" --kindreg-exclude-strategy=workload_identity"; fi
    echo "$line"
}
uniq_words() { printf '%s\n' "$@" | awk '!seen[$0]++'; }
k8s_versions() { local v; uniq_words "$(for v in "${VARIANTS[@]}"; do echo "${V_K8S[$v]}"; done)"; }
k8s_minor() { local m=${1#v1.}; echo "${m%%.*}"; }

# ---------------------------------------------------------------------------------------------
# host adaptations, each applied only where the host needs it (part of the node image's key)
oom_score_adj_restricted() { ! sh -c 'echo -999 >/proc/self/oom_score_adj' 2>/dev/null; }
host_cgroup_v1() { [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]; }

adaptations() {  # adaptations VARIANT: a word per adaptation its node image needs here (image key)
    local a=()
    if oom_score_adj_restricted; then a+=(restrict-oom-score-adj); fi
    # kubelet >= 1.35 refuses to start on cgroup v1 unless failCgroupV1 is false (KEP-5573).
    if host_cgroup_v1 && [ "$(k8s_minor "${V_K8S[$1]}")" -ge 35 ]; then a+=(kubelet-allow-cgroup-v1); fi
    echo "${a[*]:-none}"
}

# ---------------------------------------------------------------------------------------------
# cache keys and paths: what each cached thing is made of. A lab built before stays found as
# long as these do not change (bump LAB_REVISION when the way things are put together changes).

# the node root: Debian trixie by debootstrap, with kind's package list (kubectl is built with
# the rest of Kubernetes, so that it matches the variant's version, as in a kindest/node image)
NODE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
    libseccomp2 pigz fuse-overlayfs nfs-common open-iscsi bash ca-certificates curl jq procps
    containerd runc containernetworking-plugins)
rootfs_key() { printf '%s\n' trixie "${NODE_PACKAGES[@]}" | sha256sum | cut -c1-12; }
rootfs_tarball() { echo "$LAB/rootfs/trixie-$(rootfs_key).tar"; }

pause_bin() { echo "$LAB/bin/pause-$(sha256sum <"$REPO/scripts/lab/pause.c" | cut -c1-12)/pause"; }

control_plane_archive() { echo "$LAB/images/control-plane-$1-r$LAB_REVISION.tar"; }
addon_key() { echo "$LPP_VERSION $LPP_IMAGE $HELPER_IMAGE $NET_IMAGE" | sha256sum | cut -c1-12; }
addon_archive() { echo "$LAB/images/addons-$(addon_key)-r$LAB_REVISION.tar"; }

lab_files_hash() { cat "$REPO"/scripts/lab/node/* "$REPO/scripts/lab/pause.c" | sha256sum | cut -c1-12; }

base_key() {  # base_key VARIANT: everything the variant-independent part of its node image is made of
    local v=$1
    echo "$LAB_REVISION ${V_K8S[$v]} ${V_KIND_BASE[$v]} $CRICTL_VERSION $(rootfs_key) $(adaptations "$v") $(lab_files_hash) $(addon_key)" \
        | sha256sum | cut -c1-16
}
base_image() { echo "kindreg-lab/node-base:$(base_key "$1")"; }

node_image_key() {  # node_image_key VARIANT: its base, its containerd and its name
    echo "$(base_key "$1") $1 ${V_CONTAINERD[$1]} $IMAGE_REPO" | sha256sum | cut -c1-16
}
node_image_present() {  # the engine has the variant's image of the current key
    [ "$(docker image inspect -f '{{index .Config.Labels "io.kindreg.lab.key"}}' "$(variant_image "$1")" 2>/dev/null)" = "$(node_image_key "$1")" ]
}
node_image_saved() { echo "$LAB/images/node-$1-$(node_image_key "$1").tar"; }
node_image_built() { node_image_present "$1" || [ -f "$(node_image_saved "$1")" ]; }
