#!/usr/bin/env bash
# The offline kind lab: real kind clusters on a machine that cannot pull any image.
#
#   scripts/kind-lab.sh [build]           build what is missing, reuse the rest, then print one
#                                         line of pytest options per variant (the last lines)
#   scripts/kind-lab.sh options [VARIANT] print those lines (or one variant's) without building
#   scripts/kind-lab.sh pytest [--variant V] ARGS...
#                                         run pytest against a lab variant (default: the last),
#                                         keeping the host's kernel settings (see `guard`)
#   scripts/kind-lab.sh variants          print the variant names
#   scripts/kind-lab.sh guard CMD...      record the VM-wide sysctls kubelet rewrites, run CMD,
#                                         and restore them once no kind cluster is left
#
# What it builds (all cached under $KINDREG_LAB_DIR, default ~/.cache/kindreg-lab, and keyed by
# versions, so a rerun only checks):
#   - kind CLIs: Debian trixie's kind 0.27.0, and kind $KIND_GO_VERSION from `go install`;
#   - Kubernetes $K8S_VERSION (kubeadm, kubelet, control plane, kube-proxy) from the
#     k8s.io/kubernetes Go module, crictl from sigs.k8s.io/cri-tools, etcd and coredns from
#     their Go modules, pause from scripts/lab/pause.c;
#   - a node image built the way kind's is: a Debian trixie root (debootstrap) with systemd,
#     kind's entrypoint/units/containerd config read from the sigs.k8s.io/kind module in the Go
#     module cache, the control-plane images imported pinned into containerd's k8s.io namespace;
#   - two variants: containerd 1.7 (trixie) and containerd 2.1 (sid).
# Host adaptations are detected and applied only where needed (see README "Offline kind lab").
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=lab/host.sh
. scripts/lab/host.sh
# shellcheck source=venv.sh
. scripts/venv.sh

LAB=${KINDREG_LAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindreg-lab}
K8S_VERSION=v1.32.13
K8S_STAGING_FALLBACK=v0.32.12   # for staging modules the proxy lacks at v0.32.13 (k8s.io/endpointslice)
KIND_BASE_VERSION=v0.27.0       # kind module whose images/base files the node image uses
KIND_GO_VERSION=v0.30.0         # the newer kind CLI, from `go install`
CRICTL_VERSION=v1.34.0          # cri-tools v1.32.0 is not served by the module proxy
COREDNS_VERSION=v1.11.3         # what kubeadm v1.32 deploys
PAUSE_TAG=3.10
IMAGE_REPO=kindreg-lab/node
# Part of every cache key below the Go builds: bump it when the way images are put together
# (build_image_archive, kube_proxy_root, assemble_base, finish_variant) changes.
LAB_REVISION=1
VARIANTS=(containerd1.7 containerd2.1)

say() { echo "kind-lab: $*" >&2; }
BUILD_CONTAINERS=()
BUILD_DIRS=()
cleanup() {
    local c d
    for c in "${BUILD_CONTAINERS[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    for d in "${BUILD_DIRS[@]}"; do $SUDO rm -rf "$d"; done
}
trap cleanup EXIT
die() { echo "kind-lab: $*" >&2; exit 1; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

variant_image() { echo "$IMAGE_REPO:$K8S_VERSION-$1"; }
variant_kind() {
    case "$1" in
        containerd1.7) echo /usr/bin/kind ;;
        containerd2.1) echo "$LAB/bin/kind-$KIND_GO_VERSION/kind" ;;
        *) die "unknown variant $1 (variants: ${VARIANTS[*]})" ;;
    esac
}
options_line() { echo "--kindreg-kind-bin=$(variant_kind "$1") --kindreg-node-image=$(variant_image "$1")"; }

# ---------------------------------------------------------------------------------------------
# prerequisites: one actionable line each
debian_mirror() {
    local uri
    uri=$(debian_archive)
    [ -n "$uri" ] || die "no Debian archive in the apt sources; configure apt for Debian first"
    echo "$uri"
}

check_prerequisites() {
    local missing=0
    need_cmd() {
        command -v "$1" >/dev/null 2>&1 && return 0
        say "missing $1: $2"
        missing=1
    }
    need_cmd docker "apt-get install docker.io (or run scripts/setup.sh)"
    need_cmd go "install Go >= 1.23 (Debian: apt-get install -t bookworm-backports golang-1.23)"
    need_cmd gcc "apt-get install gcc libc6-dev"
    need_cmd jq "apt-get install jq"
    need_cmd debootstrap "apt-get install -t bookworm-backports debootstrap (or run scripts/setup.sh)"
    debian_kind_present \
        || { say "missing Debian trixie's kind 0.27.0: run scripts/setup.sh (adds trixie pinned low), then apt-get install -t trixie kind"; missing=1; }
    [[ "$(apt-cache policy containerd 2>/dev/null)" == *" 2.1."* ]] \
        || { say "apt does not offer Debian sid's containerd 2.1: run scripts/setup.sh (adds sid pinned low) and apt-get update"; missing=1; }
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

# ---------------------------------------------------------------------------------------------
# Go programs
kind_module_dir() {  # $1 = version; the sigs.k8s.io/kind module in the Go module cache
    go mod download -json "sigs.k8s.io/kind@$1" | jq -er .Dir
}

build_kubernetes() {
    local out="$LAB/bin/kubernetes-$K8S_VERSION" src="$LAB/src/kubernetes-$K8S_VERSION"
    local names=(kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
    if [ -f "$out/.done" ]; then say "kubernetes $K8S_VERSION: cached"; return; fi
    say "kubernetes $K8S_VERSION: building ${names[*]} from the k8s.io/kubernetes module (a few minutes)"
    mkdir -p "$src" "$out"
    local gomod staging minor=${K8S_VERSION#v1.}
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -er .GoMod)
    {
        printf 'module kindreg.lab/kubernetes\n\ngo 1.23\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
        # The module replaces its k8s.io libraries with in-tree staging copies; a consumer
        # replaces each with its published v0.<minor>.<patch> instead.
        for staging in $(sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$gomod"); do
            local version="v0.$minor"
            go mod download "$staging@$version" 2>/dev/null || version=$K8S_STAGING_FALLBACK
            printf 'replace %s => %s %s\n' "$staging" "$staging" "$version"
        done
    } >"$src/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$src/tools.go"
    for n in "${names[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$n" >>"$src/tools.go"; done
    printf ')\n' >>"$src/tools.go"
    (cd "$src" && go mod tidy >/dev/null 2>"$src/tidy.log") || die "go mod tidy failed: $(tail -n 3 "$src/tidy.log")"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    local pkgs=()
    for n in "${names[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" 2> >(grep -v '^go: downloading' >&2))
    [ "$("$out/kubeadm" version -o short)" = "$K8S_VERSION" ] || die "kubeadm reports $("$out/kubeadm" version -o short), not $K8S_VERSION"
    touch "$out/.done"
}

go_install() {  # go_install NAME VERSION PACKAGE BINARY LDFLAGS
    local out="$LAB/bin/$1"
    if [ -x "$out/$4" ]; then say "$1: cached"; return; fi
    say "$1: go install $3@$2"
    mkdir -p "$out"
    GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $5" "$3@$2" 2> >(grep -v '^go: downloading' >&2)
    [ -x "$out/$4" ] || die "go install $3@$2 made no $4 in $out"
}

build_go_tools() {
    go_install "kind-$KIND_GO_VERSION" "$KIND_GO_VERSION" sigs.k8s.io/kind kind ""
    go_install "crictl-$CRICTL_VERSION" "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
    go_install "coredns-$COREDNS_VERSION" "$COREDNS_VERSION" github.com/coredns/coredns coredns ""
    local etcd_version
    etcd_version=$(etcd_tag)
    etcd_version=v${etcd_version%-*}
    # etcd's server module has replace directives, so `go install mod@version` refuses it: build
    # it from a consumer module instead (its siblings resolve to the same version).
    local etcd="$LAB/bin/etcd-$etcd_version" src="$LAB/src/etcd-$etcd_version"
    if [ -x "$etcd/etcd" ]; then
        say "etcd-$etcd_version: cached"
    else
        say "etcd-$etcd_version: go build go.etcd.io/etcd/server/v3@$etcd_version"
        mkdir -p "$src" "$etcd"
        printf 'module kindreg.lab/etcd\n\ngo 1.23\n' >"$src/go.mod"
        printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$src/tools.go"
        (cd "$src" && go get "go.etcd.io/etcd/server/v3@$etcd_version" && go mod tidy) >/dev/null 2>&1 \
            || die "cannot resolve go.etcd.io/etcd/server/v3@$etcd_version from the Go module proxy"
        (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd/etcd" go.etcd.io/etcd/server/v3)
    fi
    local pause="$LAB/bin/pause-$PAUSE_TAG/pause"
    if [ ! -x "$pause" ]; then
        mkdir -p "$(dirname "$pause")"
        gcc -static -O2 -s -o "$pause" "$REPO/scripts/lab/pause.c"
    fi
}

etcd_tag() { "$LAB/bin/kubernetes-$K8S_VERSION/kubeadm" config images list --kubernetes-version "$K8S_VERSION" | sed -n 's#^registry.k8s.io/etcd:##p'; }

# ---------------------------------------------------------------------------------------------
# control-plane images: tagged exactly as `kubeadm config images list` prints them
build_image_archive() {  # the docker-archive tar that is imported into every node
    local archive="$LAB/images/control-plane-$K8S_VERSION-r$LAB_REVISION.tar"
    if [ -f "$archive" ]; then say "control-plane images: cached"; return; fi
    say "control-plane images: building"
    local work k8s="$LAB/bin/kubernetes-$K8S_VERSION" etcd
    etcd=$(etcd_tag)
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    local rootfs="$LAB/rootfs/trixie-$(rootfs_key).tar"
    mkdir -p "$work/libs" && tar -C "$work/libs" -xf "$rootfs" \
        ./usr/lib/x86_64-linux-gnu ./usr/lib64 ./usr/sbin ./usr/bin/bash ./usr/bin/sh ./usr/bin/dash \
        ./usr/bin/awk ./usr/bin/mawk ./usr/bin/grep ./usr/bin/cat 2>/dev/null || true
    image() {  # image REF ENTRYPOINT-JSON FILE:DEST...
        local ref=$1 entry=$2 root="$work/root"
        shift 2
        rm -rf "$root" && mkdir -p "$root/tmp" "$root/etc" "$root/var/run"
        echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
        local pair
        for pair in "$@"; do install -D -m 0755 "${pair%%:*}" "$root${pair#*:}"; done
        tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
            ${entry:+-c "ENTRYPOINT $entry"} - "$ref" >/dev/null
        refs+=("$ref")
    }
    local refs=() n
    for n in kube-apiserver kube-controller-manager kube-scheduler; do
        image "registry.k8s.io/$n:$K8S_VERSION" "" "$k8s/$n:/usr/local/bin/$n"
    done
    # kube-proxy needs iptables in its image: the trixie iptables binaries, their libraries and
    # a wrapper that picks the backend (legacy or nft) the node's kubelet uses.
    kube_proxy_root "$work"
    tar -C "$work/proxy" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "registry.k8s.io/kube-proxy:$K8S_VERSION" >/dev/null
    refs+=("registry.k8s.io/kube-proxy:$K8S_VERSION")
    image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" '["/coredns"]' "$LAB/bin/coredns-$COREDNS_VERSION/coredns:/coredns"
    image "registry.k8s.io/etcd:$etcd" "" "$LAB/bin/etcd-v${etcd%-*}/etcd:/usr/local/bin/etcd"
    image "registry.k8s.io/pause:$PAUSE_TAG" '["/pause"]' "$LAB/bin/pause-$PAUSE_TAG/pause:/pause"
    mkdir -p "$LAB/images"
    docker save -o "$archive.tmp" "${refs[@]}"
    docker rmi "${refs[@]}" >/dev/null
    mv "$archive.tmp" "$archive"
    rm -rf "$work"
}

kube_proxy_root() {  # $1 = work dir holding libs/ (from the trixie root); fills $1/proxy
    local work=$1 root="$1/proxy" f lib
    mkdir -p "$root/usr/local/bin" "$root/usr/sbin" "$root/bin" "$root/tmp" "$root/etc" "$root/run" "$root/var/run"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    install -m 0755 "$LAB/bin/kubernetes-$K8S_VERSION/kube-proxy" "$root/usr/local/bin/kube-proxy"
    install -m 0755 /bin/busybox "$root/bin/busybox"
    for f in sh grep; do ln -sf busybox "$root/bin/$f"; done
    for f in xtables-nft-multi xtables-legacy-multi conntrack; do
        [ -e "$work/libs/usr/sbin/$f" ] && cp -a "$work/libs/usr/sbin/$f" "$root/usr/sbin/"
    done
    mkdir -p "$root/usr/lib/x86_64-linux-gnu" "$root/lib64"
    cp -a "$work/libs/usr/lib/x86_64-linux-gnu/xtables" "$root/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
    for lib in libc.so.6 libm.so.6 libxtables.so.12* libip4tc.so.2* libip6tc.so.2* libnftnl.so.11* libmnl.so.0* \
        libnetfilter_conntrack.so.3* libnfnetlink.so.0* libnetfilter_cthelper.so.0* libnetfilter_cttimeout.so.1* \
        libnetfilter_queue.so.1* libgcc_s.so.1; do
        cp -a "$work"/libs/usr/lib/x86_64-linux-gnu/$lib "$root/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
    done
    cp -aL "$work/libs/usr/lib64/ld-linux-x86-64.so.2" "$root/lib64/"
    ln -sf usr/lib "$root/lib"
    # iptables-wrapper: the same choice as upstream's, by the kubelet's canary chain.
    cat >"$root/usr/sbin/iptables-wrapper" <<'WRAP'
#!/bin/sh
mode=legacy
if xtables-nft-multi iptables-save -t mangle 2>/dev/null | grep -q KUBE-IPTABLES-HINT \
    || xtables-nft-multi ip6tables-save -t mangle 2>/dev/null | grep -q KUBE-IPTABLES-HINT; then
    mode=nft
fi
for cmd in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf "xtables-$mode-multi" "/usr/sbin/$cmd"
done
exec "/usr/sbin/$(basename "$0")" "$@"
WRAP
    chmod 0755 "$root/usr/sbin/iptables-wrapper"
    for f in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
        ln -sf iptables-wrapper "$root/usr/sbin/$f"
    done
}

# ---------------------------------------------------------------------------------------------
# the node root: Debian trixie by debootstrap, with kind's package list
NODE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
    libseccomp2 pigz fuse-overlayfs nfs-common open-iscsi bash ca-certificates curl jq procps
    containerd runc containernetworking-plugins kubernetes-client)

rootfs_key() { printf '%s\n' trixie "${NODE_PACKAGES[@]}" | sha256sum | cut -c1-12; }

build_rootfs() {
    local tarball="$LAB/rootfs/trixie-$(rootfs_key).tar"
    if [ -f "$tarball" ]; then say "node root (debootstrap trixie): cached"; return; fi
    say "node root: debootstrap trixie with kind's packages (about a minute)"
    local dir mirror
    mirror=$(debian_mirror)
    dir=$(mktemp -d "$LAB/rootfs/build.XXXXXX")
    BUILD_DIRS+=("$dir" "$dir.log")
    local IFS=,
    $SUDO debootstrap --variant=minbase --include="${NODE_PACKAGES[*]}" trixie "$dir" "$mirror" >"$dir.log" 2>&1 \
        || die "debootstrap failed: $(tail -n 3 "$dir.log")"
    unset IFS
    $SUDO chroot "$dir" apt-get clean
    $SUDO rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/debconf/*-old "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
    $SUDO tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    $SUDO rm -rf "$dir" "$dir.log"
}

# ---------------------------------------------------------------------------------------------
# host adaptations, each applied only where the host needs it
oom_score_adj_restricted() { ! sh -c 'echo -999 >/proc/self/oom_score_adj' 2>/dev/null; }

adaptations() {  # a word per adaptation this host needs (part of the image key)
    local a=()
    if oom_score_adj_restricted; then a+=(restrict-oom-score-adj); fi
    echo "${a[*]:-none}"
}

node_image_key() {  # everything the node image is made of
    {
        echo "$LAB_REVISION $K8S_VERSION $KIND_BASE_VERSION $CRICTL_VERSION $COREDNS_VERSION $PAUSE_TAG $(rootfs_key) $(adaptations)"
        cat "$REPO"/scripts/lab/node/* "$REPO/scripts/lab/pause.c"
    } | sha256sum | cut -c1-16
}

assemble_base() {  # the variant-independent node image: rootfs + kind's files + Kubernetes
    local ref="kindreg-lab/node-base:$1" key=$1
    docker image inspect "$ref" >/dev/null 2>&1 && return
    say "node image: assembling kind's files ($KIND_BASE_VERSION module) and Kubernetes $K8S_VERSION"
    local kind_dir files work
    kind_dir=$(kind_module_dir "$KIND_BASE_VERSION")
    files="$kind_dir/images/base/files"
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    local root="$work/root"
    mkdir -p "$root"
    $SUDO tar -C "$root" -xf "$LAB/rootfs/trixie-$(rootfs_key).tar"
    # As kind's images/base/Dockerfile does (modes from its COPY --chmod lines).
    $SUDO install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
    $SUDO mkdir -p "$root/kind/bin" "$root/kind/manifests" "$root/etc/containerd" "$root/etc/systemd/system/kubelet.service.d" \
        "$root/etc/kubernetes/manifests" "$root/opt/cni/bin" "$root/LICENSES"
    $SUDO cp "$files/kind/README.txt" "$root/kind/" && $SUDO chmod 0644 "$root/kind/README.txt"
    $SUDO install -m 0755 "$files"/kind/bin/* "$REPO/scripts/lab/node/kindreg-cni.sh" "$root/kind/bin/"
    $SUDO install -m 0644 "$files/etc/crictl.yaml" "$root/etc/"
    $SUDO install -m 0644 "$files"/etc/containerd/* "$root/etc/containerd/"
    $SUDO install -m 0644 "$files"/etc/default/* "$root/etc/default/"
    $SUDO install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
    $SUDO install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
    $SUDO install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$REPO/scripts/lab/node/20-kindreg-cni.conf" \
        "$root/etc/systemd/system/kubelet.service.d/"
    $SUDO find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    $SUDO rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
        "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
        "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" | $SUDO tee -a "$root/etc/systemd/journald.conf" >/dev/null
    $SUDO ln -sf /lib/systemd/systemd "$root/sbin/init"
    $SUDO systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    $SUDO systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1
    # Debian puts containerd in /usr/bin and CNI plugins in /usr/lib/cni; kind's units and
    # manifests expect /usr/local/bin and /opt/cni/bin.
    for b in containerd ctr containerd-shim-runc-v2; do $SUDO ln -sf "/usr/bin/$b" "$root/usr/local/bin/$b"; done
    for p in "$root"/usr/lib/cni/*; do $SUDO ln -sf "/usr/lib/cni/$(basename "$p")" "$root/opt/cni/bin/"; done
    # One machine id per node: kind's entrypoint writes /etc/machine-id; dbus must not keep its own.
    $SUDO truncate -s 0 "$root/etc/machine-id"
    $SUDO rm -f "$root/var/lib/dbus/machine-id" && $SUDO ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"
    # What kind's node-image builder adds.
    local k8s="$LAB/bin/kubernetes-$K8S_VERSION"
    $SUDO install -m 0755 "$k8s/kubeadm" "$k8s/kubelet" "$root/usr/bin/"
    $SUDO install -m 0755 "$LAB/bin/crictl-$CRICTL_VERSION/crictl" "$root/usr/local/bin/"
    printf '%s' "$K8S_VERSION" | $SUDO tee "$root/kind/version" >/dev/null
    $SUDO install -m 0644 "$REPO/scripts/lab/node/default-cni.yaml" "$REPO/scripts/lab/node/default-storage.yaml" "$root/kind/manifests/"
    if [[ " $(adaptations) " == *" restrict-oom-score-adj "* ]]; then
        # This host refuses to lower oom_score_adj: every pod sandbox (-998) would fail.
        say "host adaptation: oom_score_adj cannot be lowered here; containerd gets restrict_oom_score_adj = true"
        $SUDO sed -i 's/^\(\s*restrict_oom_score_adj\s*=\s*\)false/\1true/' "$root/etc/containerd/config.toml"
        grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj"
    fi
    $SUDO tar -C "$root" --numeric-owner -c . | docker import \
        -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
        -c "LABEL io.kindreg.lab.key=$key" - "$ref" >/dev/null
    $SUDO rm -rf "$work"
}

finish_variant() {  # finish_variant VARIANT KEY: containerd of the variant, images, metadata
    local variant=$1 key=$2 ref
    ref=$(variant_image "$variant")
    say "node image $ref: installing containerd, importing the control-plane images"
    local c work
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    c=$(docker create --privileged --entrypoint /bin/sleep "kindreg-lab/node-base:$key" infinity)
    BUILD_CONTAINERS+=("$c")
    docker start "$c" >/dev/null
    if [ "$variant" = containerd2.1 ]; then
        (cd "$work" && apt-get download -qq containerd/sid >/dev/null 2>&1) \
            || die "apt-get download containerd/sid failed: run scripts/setup.sh (adds sid pinned low) and apt-get update"
        docker cp "$work"/containerd_*.deb "$c:/tmp/containerd.deb"
        docker exec "$c" sh -c 'dpkg -i /tmp/containerd.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }; rm -f /tmp/containerd.deb /tmp/dpkg.log'
        docker exec "$c" sh -c 'rm -f /etc/systemd/system/multi-user.target.wants/containerd.service.dpkg* ; systemctl enable containerd.service >/dev/null 2>&1 || true'
    fi
    docker exec "$c" containerd --version | grep -qE " v?${variant#containerd}\." \
        || die "$variant: node has $(docker exec "$c" containerd --version)"
    docker cp "$LAB/images/control-plane-$K8S_VERSION-r$LAB_REVISION.tar" "$c:/tmp/images.tar"
    # As kind's node-image builder: a standalone containerd, images imported pinned and unpacked later.
    docker exec "$c" sh -c '
        set -e
        printf "" >/tmp/empty.toml
        containerd --config /tmp/empty.toml >/tmp/containerd.log 2>&1 &
        pid=$!
        for i in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
        ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests /tmp/images.tar >/dev/null
        ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
            | jq "del(.process.rlimits)" >/etc/containerd/cri-base.json
        kill "$pid"; wait "$pid" || true
        rm -rf /tmp/images.tar /tmp/empty.toml /tmp/containerd.log /run/containerd
        ctr --version >/dev/null'
    docker stop -t 1 "$c" >/dev/null
    docker commit -c "LABEL io.kindreg.lab.key=$key" "$c" "$ref.tmp" >/dev/null
    # STOPSIGNAL cannot be set by import/commit on older engines: a two-line build adds it.
    printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\nCMD []\n' "$ref.tmp" \
        | DOCKER_BUILDKIT=0 docker build -q -t "$ref" - >"$work/build.log" 2>&1 \
        || die "docker build of $ref failed: $(tail -n 5 "$work/build.log")"  # its deprecation notice is noise otherwise
    docker rmi "$ref.tmp" >/dev/null
    docker rm -f "$c" >/dev/null
}

build_node_images() {
    local key variant ref
    key=$(node_image_key)
    for variant in "${VARIANTS[@]}"; do
        ref=$(variant_image "$variant")
        if [ "$(docker image inspect -f '{{index .Config.Labels "io.kindreg.lab.key"}}' "$ref" 2>/dev/null)" = "$key" ]; then
            say "node image $ref: present"
            continue
        fi
        local saved="$LAB/images/node-$variant-$key.tar"
        if [ -f "$saved" ]; then
            say "node image $ref: loading the cached copy"
            docker load -q -i "$saved" >/dev/null
            continue
        fi
        assemble_base "$key"
        finish_variant "$variant" "$key"
        say "node image $ref: saving a copy in the lab cache"
        rm -f "$LAB"/images/node-"$variant"-*.tar
        docker save -o "$saved.tmp" "$ref" && mv "$saved.tmp" "$saved"
    done
    docker rmi "kindreg-lab/node-base:$key" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------------------------
# host kernel settings kubelet rewrites (a node is privileged; these sysctls are VM-wide)
GUARDED_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

kind_clusters_running() { [ -n "$(docker ps -aq --filter label=io.x-k8s.kind.cluster 2>/dev/null)" ]; }

guard() {
    local saved=() s rc=0
    for s in "${GUARDED_SYSCTLS[@]}"; do saved+=("$s=$(sysctl -n "$s")"); done
    set +e
    "$@"
    rc=$?
    set -e
    if kind_clusters_running; then
        say "kind clusters are still running (kept?): the host's ${GUARDED_SYSCTLS[*]} stay as kubelet set them"
    else
        for s in "${saved[@]}"; do
            [ "$(sysctl -n "${s%%=*}")" = "${s#*=}" ] && continue
            $SUDO sysctl -qw "$s" && say "restored $s (kubelet had changed it)"
        done
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
build() {
    local started=$SECONDS
    mkdir -p "$LAB/bin" "$LAB/src" "$LAB/images" "$LAB/rootfs"
    check_prerequisites
    [ -d /lib/modules ] || { say "host adaptation: /lib/modules is missing; creating it (kind bind-mounts it)"; $SUDO mkdir -p /lib/modules; }
    say "node image adaptations for this host: $(adaptations)"
    if cap_sys_resource_missing; then
        say "host adaptation: no CAP_SYS_RESOURCE here; the Docker engine's default runtime is $(docker info -f '{{.DefaultRuntime}}' 2>/dev/null) (scripts/setup.sh sets kindreg-runc)"
    fi
    build_kubernetes
    build_go_tools
    build_rootfs
    build_image_archive
    build_node_images
    say "lab ready in $((SECONDS - started)) s (cache: $LAB); pytest options per variant:"
    for variant in "${VARIANTS[@]}"; do options_line "$variant"; done
}

case "${1:-build}" in
    build) build ;;
    options)
        if [ -n "${2:-}" ]; then options_line "$2"; else for v in "${VARIANTS[@]}"; do options_line "$v"; done; fi ;;
    pytest)
        shift
        variant=${VARIANTS[-1]}
        if [ "${1:-}" = --variant ]; then variant=$2; shift 2; fi
        docker image inspect "$(variant_image "$variant")" >/dev/null 2>&1 || die "no lab image for $variant: run scripts/kind-lab.sh build"
        read -ra opts <<<"$(options_line "$variant")"
        py=$(kindreg_python) || exit 1
        guard "$py" -m pytest "${opts[@]}" "$@" ;;
    guard) shift; guard "$@" ;;
    variants) printf '%s\n' "${VARIANTS[@]}" ;;
    *) die "unknown command $1 (build, options, pytest, variants, guard)" ;;
esac
