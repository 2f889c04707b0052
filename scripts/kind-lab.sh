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
# versions, so a rerun only checks), per variant (table below):
#   - the variant's kind CLI: Debian trixie's kind 0.27.0, or `go install sigs.k8s.io/kind@V`;
#   - its Kubernetes (kubeadm, kubelet, kubectl, control plane, kube-proxy) from the
#     k8s.io/kubernetes Go module, etcd and coredns at the tags its kubeadm asks for, from their
#     Go modules; crictl from sigs.k8s.io/cri-tools, pause from scripts/lab/pause.c;
#   - its containerd: Debian trixie's, sid's, or built from github.com/containerd/containerd/v2;
#   - a node image built the way kind's is: a Debian trixie root (debootstrap) with systemd,
#     kind's entrypoint/units/containerd config read from the variant's sigs.k8s.io/kind module
#     in the Go module cache, the images its manifests name imported pinned into containerd's
#     k8s.io namespace;
#   - storage as kind deploys it (kind's own default-storage manifest with local-path-provisioner
#     built from its Go module) and a kindnetd-like pod network (scripts/lab/node/).
# Host adaptations are detected and applied only where needed (see README "Offline kind lab").
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=lab/host.sh
. scripts/lab/host.sh
# shellcheck source=venv.sh
. scripts/venv.sh

LAB=${KINDREG_LAB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kindreg-lab}

# The variants, oldest first; the last is the default of `pytest`.
#   Kubernetes: the newest patch of the minor the Go module proxy serves (v1.35.9/.10 are refused).
#   kind CLI: "debian" is trixie's /usr/bin/kind 0.27.0, else `go install sigs.k8s.io/kind@V`.
#   kind base: the sigs.k8s.io/kind module whose images/base/files and storage manifest the node
#     image uses (the 1.35 variant takes them from the module of the kind CLI that drives it).
#   containerd: trixie (the root's own 1.7), sid (Debian's 2.1 .deb), or vX.Y.Z built from
#     github.com/containerd/containerd/v2.
VARIANTS=(containerd1.7 containerd2.1 containerd2.2)
declare -A V_K8S=([containerd1.7]=v1.32.13 [containerd2.1]=v1.32.13 [containerd2.2]=v1.35.8)
declare -A V_KIND=([containerd1.7]=debian [containerd2.1]=v0.30.0 [containerd2.2]=v0.33.0)
declare -A V_KIND_BASE=([containerd1.7]=v0.27.0 [containerd2.1]=v0.27.0 [containerd2.2]=v0.33.0)
declare -A V_CONTAINERD=([containerd1.7]=trixie [containerd2.1]=sid [containerd2.2]=v2.2.9)

CRICTL_VERSION=v1.34.0          # cri-tools v1.32.0 and v1.35.0 are not served by the module proxy
LPP_VERSION=v0.0.30             # rancher local-path-provisioner, as in kind v0.27-v0.33
# Images the lab's manifests name (imported under exactly these names into every node).
LPP_IMAGE=docker.io/kindreg-lab/local-path-provisioner:$LPP_VERSION
BUSYBOX_TAG=$( { /bin/busybox 2>/dev/null || true; } | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')
HELPER_IMAGE=docker.io/kindreg-lab/local-path-helper:busybox-${BUSYBOX_TAG:-unknown}
NET_IMAGE=docker.io/kindreg-lab/kindreg-net:busybox-${BUSYBOX_TAG:-unknown}
# Another name lets a lab be rebuilt and tried while a test run still uses the current images.
IMAGE_REPO=${KINDREG_LAB_IMAGE_REPO:-kindreg-lab/node}
# Part of every cache key below the Go builds: bump it when the way images are put together
# (build_image_archive, build_addon_archive, kube_proxy_root, assemble_base, finish_variant)
# changes.
LAB_REVISION=2

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

known_variant() { [ -n "${V_K8S[$1]:-}" ] || die "unknown variant $1 (variants: ${VARIANTS[*]})"; }
variant_image() { known_variant "$1"; echo "$IMAGE_REPO:${V_K8S[$1]}-$1"; }
variant_kind() {
    known_variant "$1"
    if [ "${V_KIND[$1]}" = debian ]; then echo /usr/bin/kind; else echo "$LAB/bin/kind-${V_KIND[$1]}/kind"; fi
}
options_line() { known_variant "$1"; echo "--kindreg-kind-bin=$(variant_kind "$1") --kindreg-node-image=$(variant_image "$1")"; }
uniq_words() { printf '%s\n' "$@" | awk '!seen[$0]++'; }
k8s_versions() { local v; uniq_words "$(for v in "${VARIANTS[@]}"; do echo "${V_K8S[$v]}"; done)"; }
k8s_minor() { local m=${1#v1.}; echo "${m%%.*}"; }
timed() {  # timed WHAT CMD...: run CMD, then log how long it took (the build times in the README)
    local what=$1 t=$SECONDS
    shift
    "$@"
    [ $((SECONDS - t)) -lt 2 ] || say "$what: $((SECONDS - t)) s"
}

# ---------------------------------------------------------------------------------------------
# prerequisites: one actionable line each
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
        say "Go $(go env GOVERSION) is too old: Kubernetes ${V_K8S[containerd2.2]} needs Go >= 1.25 (go.dev/dl)"
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

# ---------------------------------------------------------------------------------------------
# Go programs
kind_module_dir() {  # $1 = version; the sigs.k8s.io/kind module in the Go module cache
    go mod download -json "sigs.k8s.io/kind@$1" | jq -er .Dir
}

K8S_BINARIES=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

staging_version() {  # staging_version MODULE v0.M.P: that version, else the patch before if served
    # The proxy lacks a few staging modules at the newest patch (k8s.io/endpointslice v0.32.13).
    # Modules the build does not need (k8s.io/sample-*) are not served at all: their replace
    # line is harmless, so they keep the version asked for.
    local module=$1 version=$2 previous
    previous=${version%.*}.$((${version##*.} - 1))
    if go mod download "$module@$version" 2>/dev/null; then
        echo "$version"
    elif [ "${version##*.}" -gt 0 ] && go mod download "$module@$previous" 2>/dev/null; then
        echo "$previous"
    else
        echo "$version"
    fi
}

build_kubernetes() {  # $1 = Kubernetes version; builds the binaries of K8S_BINARIES that are missing
    local version=$1 out="$LAB/bin/kubernetes-$1" src="$LAB/src/kubernetes-$1" n
    local missing=()
    for n in "${K8S_BINARIES[@]}"; do [ -x "$out/$n" ] || missing+=("$n"); done
    if [ ${#missing[@]} = 0 ]; then say "kubernetes $version: cached"; return; fi
    say "kubernetes $version: building ${missing[*]} from the k8s.io/kubernetes module (a few minutes)"
    mkdir -p "$src" "$out"
    local gomod staging minor godirective
    minor=$(k8s_minor "$version")
    gomod=$(go mod download -json "k8s.io/kubernetes@$version" | jq -er .GoMod)
    godirective=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
    {
        printf 'module kindreg.lab/kubernetes\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\n' "$godirective" "$version"
        # The module replaces its k8s.io libraries with in-tree staging copies; a consumer
        # replaces each with its published v0.<minor>.<patch> instead.
        for staging in $(sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$gomod"); do
            printf 'replace %s => %s %s\n' "$staging" "$staging" "$(staging_version "$staging" "v0.${version#v1.}")"
        done
    } >"$src/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport (\n' >"$src/tools.go"
    for n in "${K8S_BINARIES[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$n" >>"$src/tools.go"; done
    printf ')\n' >>"$src/tools.go"
    (cd "$src" && go mod tidy >/dev/null 2>"$src/tidy.log") || die "go mod tidy failed: $(tail -n 3 "$src/tidy.log")"
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    local pkgs=()
    for n in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" 2> >(grep -v '^go: downloading' >&2))
    [ "$("$out/kubeadm" version -o short)" = "$version" ] || die "kubeadm reports $("$out/kubeadm" version -o short), not $version"
}

go_install() {  # go_install NAME VERSION BINARY LDFLAGS TAGS PACKAGE...: into $LAB/bin/NAME
    local name=$1 version=$2 binary=$3 ldflags=$4 tags=$5 out="$LAB/bin/$1" p
    shift 5
    if [ -x "$out/$binary" ]; then say "$name: cached"; return; fi
    local pkgs=()
    for p in "$@"; do pkgs+=("$p@$version"); done
    say "$name: go install ${pkgs[*]}"
    mkdir -p "$out"
    local t=$SECONDS
    GOBIN="$out" CGO_ENABLED=0 go install -trimpath ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" "${pkgs[@]}" \
        2> >(grep -v '^go: downloading' >&2)
    [ -x "$out/$binary" ] || die "go install ${pkgs[*]} made no $binary in $out"
    say "$name: built in $((SECONDS - t)) s"
}

kubeadm_image() {  # kubeadm_image K8S-VERSION NAME: the tag kubeadm of that version wants for NAME
    local dir="$LAB/bin/kubernetes-$1"
    # kubeadm takes up to seconds to answer: its list is kept next to it.
    [ "$dir/images.txt" -nt "$dir/kubeadm" ] \
        || { "$dir/kubeadm" config images list --kubernetes-version "$1" >"$dir/images.txt.tmp" && mv "$dir/images.txt.tmp" "$dir/images.txt"; }
    sed -n "s#^registry.k8s.io/$2:##p" "$dir/images.txt"
}

build_etcd() {  # $1 = etcd version (vX.Y.Z)
    # etcd's server module has replace directives, so `go install mod@version` refuses it: build
    # it from a consumer module instead (its siblings resolve to the same version).
    local version=$1 etcd="$LAB/bin/etcd-$1" src="$LAB/src/etcd-$1"
    if [ -x "$etcd/etcd" ]; then say "etcd-$version: cached"; return; fi
    say "etcd-$version: go build go.etcd.io/etcd/server/v3@$version"
    local t=$SECONDS
    mkdir -p "$src" "$etcd"
    printf 'module kindreg.lab/etcd\n\ngo 1.23\n' >"$src/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$src/tools.go"
    (cd "$src" && go get "go.etcd.io/etcd/server/v3@$version" && go mod tidy) >/dev/null 2>&1 \
        || die "cannot resolve go.etcd.io/etcd/server/v3@$version from the Go module proxy"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd/etcd" go.etcd.io/etcd/server/v3)
    say "etcd-$version: built in $((SECONDS - t)) s"
}

pause_bin() { echo "$LAB/bin/pause-$(sha256sum <"$REPO/scripts/lab/pause.c" | cut -c1-12)/pause"; }

build_go_tools() {
    local v k8s seen_kind=() etcd
    for v in "${VARIANTS[@]}"; do
        [ "${V_KIND[$v]}" != debian ] || continue
        [[ " ${seen_kind[*]} " != *" ${V_KIND[$v]} "* ]] || continue
        seen_kind+=("${V_KIND[$v]}")
        go_install "kind-${V_KIND[$v]}" "${V_KIND[$v]}" kind "" "" sigs.k8s.io/kind
    done
    go_install "crictl-$CRICTL_VERSION" "$CRICTL_VERSION" crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "" sigs.k8s.io/cri-tools/cmd/crictl
    for k8s in $(k8s_versions); do
        v=$(kubeadm_image "$k8s" coredns/coredns)
        go_install "coredns-$v" "$v" coredns "" "" github.com/coredns/coredns
        etcd=$(kubeadm_image "$k8s" etcd)
        build_etcd "v${etcd%-*}"
    done
    for v in "${VARIANTS[@]}"; do
        case "${V_CONTAINERD[$v]}" in
            trixie|sid) ;;
            v*) local c=${V_CONTAINERD[$v]}
                # Static (no cgo), without btrfs (its headers would need cgo); the version ldflag
                # makes `containerd --version` print vX.Y.Z, not X.Y.Z+unknown, for tools that parse it.
                go_install "containerd-$c" "$c" containerd-shim-runc-v2 \
                    "-X github.com/containerd/containerd/v2/version.Version=$c" no_btrfs \
                    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
                    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 ;;
        esac
    done
    go_install "local-path-provisioner-$LPP_VERSION" "$LPP_VERSION" local-path-provisioner \
        "-X main.VERSION=$LPP_VERSION" "" github.com/rancher/local-path-provisioner
    local pause
    pause=$(pause_bin)
    if [ ! -x "$pause" ]; then
        mkdir -p "$(dirname "$pause")"
        gcc -static -O2 -s -o "$pause" "$REPO/scripts/lab/pause.c"
    fi
}

# ---------------------------------------------------------------------------------------------
# images the nodes carry, as docker-archive tars imported into every node
lib_root() {  # $1 = work dir: fills $1/libs with the trixie root's binaries and libraries
    mkdir -p "$1/libs" && tar -C "$1/libs" -xf "$LAB/rootfs/trixie-$(rootfs_key).tar" \
        ./usr/lib/x86_64-linux-gnu ./usr/lib64 ./usr/sbin ./usr/bin/bash ./usr/bin/sh ./usr/bin/dash \
        ./usr/bin/awk ./usr/bin/mawk ./usr/bin/grep ./usr/bin/cat 2>/dev/null || true
}

import_root() {  # import_root DIR REF [ENTRYPOINT-JSON]: a one-layer image of DIR
    tar -C "$1" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        ${3:+-c "ENTRYPOINT $3"} - "$2" >/dev/null
}

small_image() {  # small_image WORK REF ENTRYPOINT-JSON FILE:DEST...; appends REF to refs
    local work=$1 ref=$2 entry=$3 root="$1/root" pair
    shift 3
    rm -rf "$root" && mkdir -p "$root/tmp" "$root/etc" "$root/var/run"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    for pair in "$@"; do install -D -m 0755 "${pair%%:*}" "$root${pair#*:}"; done
    import_root "$root" "$ref" "$entry"
    refs+=("$ref")
}

save_archive() {  # save_archive ARCHIVE: the images in refs, then removed from the engine
    mkdir -p "$LAB/images"
    docker save -o "$1.tmp" "${refs[@]}"
    docker rmi "${refs[@]}" >/dev/null
    mv "$1.tmp" "$1"
}

control_plane_archive() { echo "$LAB/images/control-plane-$1-r$LAB_REVISION.tar"; }

build_image_archive() {  # $1 = Kubernetes version: its control-plane images, tagged as kubeadm lists them
    local version=$1 archive
    archive=$(control_plane_archive "$1")
    if [ -f "$archive" ]; then say "control-plane images $version: cached"; return; fi
    say "control-plane images $version: building"
    local work k8s="$LAB/bin/kubernetes-$version" etcd coredns pause refs=() n
    etcd=$(kubeadm_image "$version" etcd)
    coredns=$(kubeadm_image "$version" coredns/coredns)
    pause=$(kubeadm_image "$version" pause)
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    lib_root "$work"
    for n in kube-apiserver kube-controller-manager kube-scheduler; do
        small_image "$work" "registry.k8s.io/$n:$version" "" "$k8s/$n:/usr/local/bin/$n"
    done
    # kube-proxy needs iptables in its image: the trixie iptables binaries, their libraries and
    # a wrapper that picks the backend (legacy or nft) the node's kubelet uses.
    kube_proxy_root "$work" "$k8s/kube-proxy"
    import_root "$work/proxy" "registry.k8s.io/kube-proxy:$version"
    refs+=("registry.k8s.io/kube-proxy:$version")
    small_image "$work" "registry.k8s.io/coredns/coredns:$coredns" '["/coredns"]' "$LAB/bin/coredns-$coredns/coredns:/coredns"
    small_image "$work" "registry.k8s.io/etcd:$etcd" "" "$LAB/bin/etcd-v${etcd%-*}/etcd:/usr/local/bin/etcd"
    small_image "$work" "registry.k8s.io/pause:$pause" '["/pause"]' "$(pause_bin):/pause"
    save_archive "$archive"
    rm -rf "$work"
}

addon_archive() { echo "$LAB/images/addons-$(addon_key)-r$LAB_REVISION.tar"; }
addon_key() { echo "$LPP_VERSION $LPP_IMAGE $HELPER_IMAGE $NET_IMAGE" | sha256sum | cut -c1-12; }

build_addon_archive() {  # what every variant's manifests name: storage and the pod network
    local archive
    archive=$(addon_archive)
    if [ -f "$archive" ]; then say "storage and pod network images: cached"; return; fi
    say "storage and pod network images: building"
    local work refs=() a
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    small_image "$work" "$LPP_IMAGE" '["local-path-provisioner"]' \
        "$LAB/bin/local-path-provisioner-$LPP_VERSION/local-path-provisioner:/usr/bin/local-path-provisioner"
    # One static busybox serves the local-path helper pods (sh, mkdir, rm) and the pod network's
    # DaemonSet (chroot into the node): two names of one image.
    rm -rf "$work/bb" && mkdir -p "$work/bb/bin" "$work/bb/tmp" "$work/bb/etc"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$work/bb/etc/passwd"
    install -m 0755 /bin/busybox "$work/bb/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/bb/bin/$a"; done
    import_root "$work/bb" "$HELPER_IMAGE"
    docker tag "$HELPER_IMAGE" "$NET_IMAGE"
    refs+=("$HELPER_IMAGE" "$NET_IMAGE")
    save_archive "$archive"
    rm -rf "$work"
}

kube_proxy_root() {  # kube_proxy_root WORK KUBE-PROXY: WORK holds libs/ (lib_root); fills WORK/proxy
    local work=$1 root="$1/proxy" f lib
    mkdir -p "$root/usr/local/bin" "$root/usr/sbin" "$root/bin" "$root/tmp" "$root/etc" "$root/run" "$root/var/run"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    install -m 0755 "$2" "$root/usr/local/bin/kube-proxy"
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
# the node root: Debian trixie by debootstrap, with kind's package list (kubectl is built with
# the rest of Kubernetes, so that it matches the variant's version, as in a kindest/node image)
NODE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
    libseccomp2 pigz fuse-overlayfs nfs-common open-iscsi bash ca-certificates curl jq procps
    containerd runc containernetworking-plugins)

rootfs_key() { printf '%s\n' trixie "${NODE_PACKAGES[@]}" | sha256sum | cut -c1-12; }

build_rootfs() {
    local tarball="$LAB/rootfs/trixie-$(rootfs_key).tar"
    if [ -f "$tarball" ]; then say "node root (debootstrap trixie): cached"; return; fi
    say "node root: debootstrap trixie with kind's packages (about a minute)"
    local dir mirror t=$SECONDS
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
    say "node root: built in $((SECONDS - t)) s"
}

# ---------------------------------------------------------------------------------------------
# host adaptations, each applied only where the host needs it
oom_score_adj_restricted() { ! sh -c 'echo -999 >/proc/self/oom_score_adj' 2>/dev/null; }
host_cgroup_v1() { [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" != cgroup2fs ]; }

adaptations() {  # adaptations VARIANT: a word per adaptation its node image needs here (image key)
    local a=()
    if oom_score_adj_restricted; then a+=(restrict-oom-score-adj); fi
    # kubelet >= 1.35 refuses to start on cgroup v1 unless failCgroupV1 is false (KEP-5573).
    if host_cgroup_v1 && [ "$(k8s_minor "${V_K8S[$1]}")" -ge 35 ]; then a+=(kubelet-allow-cgroup-v1); fi
    echo "${a[*]:-none}"
}

lab_files_hash() { cat "$REPO"/scripts/lab/node/* "$REPO/scripts/lab/pause.c" | sha256sum | cut -c1-12; }

base_key() {  # base_key VARIANT: everything the variant-independent part of its node image is made of
    local v=$1
    echo "$LAB_REVISION ${V_K8S[$v]} ${V_KIND_BASE[$v]} $CRICTL_VERSION $(rootfs_key) $(adaptations "$v") $(lab_files_hash) $(addon_key)" \
        | sha256sum | cut -c1-16
}

node_image_key() {  # node_image_key VARIANT: its base, its containerd and its name
    echo "$(base_key "$1") $1 ${V_CONTAINERD[$1]} $IMAGE_REPO" | sha256sum | cut -c1-16
}

kind_storage_manifest() {  # $1 = kind module dir: kind's own default-storage manifest with the lab's images
    # kind keeps it as a Go string constant built around two image constants; only those change.
    local src="$1/pkg/build/nodeimage/const_storage.go" manifest
    manifest=$(sed -n '/^const defaultStorageManifest = `$/,/^`$/p' "$src" | sed '1d;$d' \
        | sed -e "s#\` + storageProvisionerImage + \`#$LPP_IMAGE#g" -e "s#\` + storageHelperImage + \`#$HELPER_IMAGE#g")
    [[ "$manifest" == *"image: $LPP_IMAGE"* && "$manifest" == *"- $HELPER_IMAGE"* && "$manifest" != *'`'* ]] \
        || die "cannot read kind's storage manifest from $src (its layout changed?)"
    printf '%s\n' "$manifest"
}

assemble_base() {  # assemble_base VARIANT: rootfs + kind's files + Kubernetes + manifests (shared by variants with one base key)
    local v=$1 key ref
    key=$(base_key "$v")
    ref="kindreg-lab/node-base:$key"
    BASE_IMAGES+=("$ref")
    docker image inspect "$ref" >/dev/null 2>&1 && return
    local k8s_version=${V_K8S[$v]} kind_version=${V_KIND_BASE[$v]}
    say "node base $k8s_version: assembling kind's files ($kind_version module), Kubernetes $k8s_version, manifests"
    local kind_dir files work t=$SECONDS
    kind_dir=$(kind_module_dir "$kind_version")
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
    $SUDO install -m 0755 "$files"/kind/bin/* "$REPO/scripts/lab/node/kindreg-net.sh" "$root/kind/bin/"
    $SUDO install -m 0644 "$files/etc/crictl.yaml" "$root/etc/"
    $SUDO install -m 0644 "$files"/etc/containerd/* "$root/etc/containerd/"
    $SUDO install -m 0644 "$files"/etc/default/* "$root/etc/default/"
    $SUDO install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
    $SUDO install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
    $SUDO install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
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
    local k8s="$LAB/bin/kubernetes-$k8s_version"
    $SUDO install -m 0755 "$k8s/kubeadm" "$k8s/kubelet" "$k8s/kubectl" "$root/usr/bin/"
    $SUDO install -m 0755 "$LAB/bin/crictl-$CRICTL_VERSION/crictl" "$root/usr/local/bin/"
    printf '%s' "$k8s_version" | $SUDO tee "$root/kind/version" >/dev/null
    # kind applies these on cluster creation: its own storage manifest with the lab's images, and
    # the lab's pod network (kind templates {{ .PodSubnet }} in it and adds CONTROL_PLANE_ENDPOINT).
    kind_storage_manifest "$kind_dir" | $SUDO tee "$root/kind/manifests/default-storage.yaml" >/dev/null
    sed "s#KINDREG_NET_IMAGE#$NET_IMAGE#" "$REPO/scripts/lab/node/default-cni.yaml" \
        | $SUDO tee "$root/kind/manifests/default-cni.yaml" >/dev/null
    $SUDO chmod 0644 "$root"/kind/manifests/*
    local adapt
    adapt=" $(adaptations "$v") "
    if [[ "$adapt" == *" restrict-oom-score-adj "* ]]; then
        # This host refuses to lower oom_score_adj: every pod sandbox (-998) would fail.
        say "host adaptation: oom_score_adj cannot be lowered here; containerd gets restrict_oom_score_adj = true"
        $SUDO sed -i 's/^\(\s*restrict_oom_score_adj\s*=\s*\)false/\1true/' "$root/etc/containerd/config.toml"
        grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml" || die "could not set restrict_oom_score_adj"
    fi
    if [[ "$adapt" == *" kubelet-allow-cgroup-v1 "* ]]; then
        # In the image, not in a kind config, so that a user's kind config works unchanged. The
        # flag overrides the config file kubeadm writes, and is not deprecated (unlike most).
        say "host adaptation: cgroup v1 here; kubelet $k8s_version gets --fail-cgroupv1=false (/etc/default/kubelet)"
        $SUDO sed -i 's#^KUBELET_EXTRA_ARGS=.*#& --fail-cgroupv1=false#' "$root/etc/default/kubelet"
        grep -q '^KUBELET_EXTRA_ARGS=.* --fail-cgroupv1=false' "$root/etc/default/kubelet" || die "could not set --fail-cgroupv1=false"
    fi
    $SUDO tar -C "$root" --numeric-owner -c . | docker import \
        -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
        -c "LABEL io.kindreg.lab.key=$key" - "$ref" >/dev/null
    $SUDO rm -rf "$work"
    say "node base $k8s_version: assembled in $((SECONDS - t)) s"
}

install_containerd() {  # install_containerd VARIANT CONTAINER WORK: the variant's containerd into the node
    local v=$1 c=$2 work=$3 source=${V_CONTAINERD[$1]}
    case "$source" in
        trixie) ;;  # the root's own
        sid)
            (cd "$work" && apt-get download -qq containerd/sid >/dev/null 2>&1) \
                || die "apt-get download containerd/sid failed: run scripts/setup.sh (adds sid pinned low) and apt-get update"
            docker cp "$work"/containerd_*.deb "$c:/tmp/containerd.deb"
            docker exec "$c" sh -c 'dpkg -i /tmp/containerd.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }; rm -f /tmp/containerd.deb /tmp/dpkg.log' ;;
        v*)
            # Built from the Go module: Debian's package goes (its conffiles stay, kind's config
            # among them); runc stays Debian's.
            docker exec "$c" sh -c 'dpkg -r containerd >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }; rm -f /tmp/dpkg.log /usr/local/bin/containerd /usr/local/bin/ctr /usr/local/bin/containerd-shim-runc-v2'
            local b
            for b in containerd ctr containerd-shim-runc-v2; do docker cp "$LAB/bin/containerd-$source/$b" "$c:/usr/local/bin/$b"; done ;;
        *) die "$v: unknown containerd source $source" ;;
    esac
    # dpkg's maintainer scripts may have disabled kind's containerd.service.
    docker exec "$c" sh -c 'rm -f /etc/systemd/system/multi-user.target.wants/containerd.service.dpkg*; systemctl enable containerd.service >/dev/null 2>&1 || true
        [ -e /etc/systemd/system/multi-user.target.wants/containerd.service ]' || die "$v: containerd.service is not enabled"
    local want=${v#containerd} have
    [ "$source" = trixie ] || [ "$source" = sid ] || want=${source#v}
    have=$(node_exec "$c" containerd --version)
    grep -qE " v?${want//./\\.}([. ]|$)" <<<"$have" || die "$v: node has $have"
    docker exec "$c" cmp -s /etc/containerd/config.toml /etc/containerd/config.toml.kindreg \
        || die "$v: installing containerd changed kind's /etc/containerd/config.toml"
}

node_exec() {  # docker exec, without the cgroup v1 deprecation notice containerd >= 2.2 prints per command
    docker exec "$@" 2> >(grep -v 'DEPRECATION: The support for cgroup v1 is deprecated' >&2)
}

finish_variant() {  # finish_variant VARIANT KEY: containerd of the variant, images, metadata
    local v=$1 key=$2 ref t=$SECONDS
    ref=$(variant_image "$v")
    say "node image $ref: installing containerd (${V_CONTAINERD[$v]}), importing the images"
    local c work
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    c=$(docker create --privileged --entrypoint /bin/sleep "kindreg-lab/node-base:$(base_key "$v")" infinity)
    BUILD_CONTAINERS+=("$c")
    docker start "$c" >/dev/null
    docker exec "$c" cp /etc/containerd/config.toml /etc/containerd/config.toml.kindreg
    install_containerd "$v" "$c" "$work"
    docker exec "$c" rm /etc/containerd/config.toml.kindreg
    docker cp "$(control_plane_archive "${V_K8S[$v]}")" "$c:/tmp/images.tar"
    docker cp "$(addon_archive)" "$c:/tmp/addons.tar"
    # The sandbox image kind's containerd config names (kind's builder preloads that one instead
    # of kubeadm's pause when they differ): the same pause, tagged so.
    local sandbox pause
    sandbox=$(docker exec "$c" sed -n 's/^\s*sandbox_image\s*=\s*"\(.*\)"/\1/p' /etc/containerd/config.toml)
    pause=registry.k8s.io/pause:$(kubeadm_image "${V_K8S[$v]}" pause)
    # As kind's node-image builder: a standalone containerd, images imported pinned and unpacked later.
    node_exec -e SANDBOX="$sandbox" -e PAUSE="$pause" "$c" sh -c '
        set -e
        printf "" >/tmp/empty.toml
        containerd --config /tmp/empty.toml >/tmp/containerd.log 2>&1 &
        pid=$!
        for i in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
        for a in /tmp/images.tar /tmp/addons.tar; do
            ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests "$a" >/dev/null
        done
        if [ -n "$SANDBOX" ] && [ "$SANDBOX" != "$PAUSE" ]; then
            ctr -n k8s.io images tag "$PAUSE" "$SANDBOX" >/dev/null
            ctr -n k8s.io images label "$SANDBOX" io.cri-containerd.pinned=pinned >/dev/null
        fi
        ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
            | jq "del(.process.rlimits)" >/etc/containerd/cri-base.json
        kill "$pid"; wait "$pid" || true
        rm -rf /tmp/images.tar /tmp/addons.tar /tmp/empty.toml /tmp/containerd.log /run/containerd
        ctr --version >/dev/null'
    docker stop -t 1 "$c" >/dev/null
    docker commit -c "LABEL io.kindreg.lab.key=$key" "$c" "$ref.tmp" >/dev/null
    # STOPSIGNAL cannot be set by import/commit on older engines: a two-line build adds it.
    printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\nCMD []\n' "$ref.tmp" \
        | DOCKER_BUILDKIT=0 docker build -q -t "$ref" - >"$work/build.log" 2>&1 \
        || die "docker build of $ref failed: $(tail -n 5 "$work/build.log")"  # its deprecation notice is noise otherwise
    docker rmi "$ref.tmp" >/dev/null
    docker rm -f "$c" >/dev/null
    say "node image $ref: finished in $((SECONDS - t)) s"
}

node_image_present() {  # the engine has the variant's image of the current key
    [ "$(docker image inspect -f '{{index .Config.Labels "io.kindreg.lab.key"}}' "$(variant_image "$1")" 2>/dev/null)" = "$(node_image_key "$1")" ]
}
node_image_saved() { echo "$LAB/images/node-$1-$(node_image_key "$1").tar"; }
node_image_built() { node_image_present "$1" || [ -f "$(node_image_saved "$1")" ]; }

BASE_IMAGES=()
build_node_images() {
    local key v ref old saved
    for v in "${VARIANTS[@]}"; do
        key=$(node_image_key "$v")
        ref=$(variant_image "$v")
        if node_image_present "$v"; then
            say "node image $ref: present"
            continue
        fi
        # The image this one replaces goes once nothing uses it (a kept cluster keeps it).
        old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
        saved=$(node_image_saved "$v")
        if [ -f "$saved" ]; then
            say "node image $ref: loading the cached copy"
            docker load -q -i "$saved" >/dev/null
        else
            assemble_base "$v"
            finish_variant "$v" "$key"
            say "node image $ref: saving a copy in the lab cache"
            rm -f "$LAB"/images/node-"$v"-*.tar
            docker save -o "$saved.tmp" "$ref" && mv "$saved.tmp" "$saved"
        fi
        [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
    done
    [ ${#BASE_IMAGES[@]} = 0 ] || docker rmi $(uniq_words "${BASE_IMAGES[@]}") >/dev/null 2>&1 || true
}

prune_cache() {  # archives and node roots no current key names (older revisions and versions)
    local keep=() f k8s
    keep+=("$(addon_archive)" "$LAB/rootfs/trixie-$(rootfs_key).tar")
    for k8s in $(k8s_versions); do keep+=("$(control_plane_archive "$k8s")"); done
    for f in "$LAB"/images/control-plane-*.tar "$LAB"/images/addons-*.tar "$LAB"/rootfs/trixie-*.tar; do
        [ -e "$f" ] || continue
        [[ " ${keep[*]} " == *" $f "* ]] || { say "cache: removing $(basename "$f") (no current key names it)"; rm -f "$f"; }
    done
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
    local started=$SECONDS v k8s
    mkdir -p "$LAB/bin" "$LAB/src" "$LAB/images" "$LAB/rootfs"
    check_prerequisites
    [ -d /lib/modules ] || { say "host adaptation: /lib/modules is missing; creating it (kind bind-mounts it)"; $SUDO mkdir -p /lib/modules; }
    for v in "${VARIANTS[@]}"; do say "node image adaptations for this host, $v: $(adaptations "$v")"; done
    if cap_sys_resource_missing; then
        say "host adaptation: no CAP_SYS_RESOURCE here; the Docker engine's default runtime is $(docker info -f '{{.DefaultRuntime}}' 2>/dev/null) (scripts/setup.sh sets kindreg-runc)"
    fi
    for k8s in $(k8s_versions); do timed "kubernetes $k8s" build_kubernetes "$k8s"; done
    build_go_tools
    build_rootfs
    for k8s in $(k8s_versions); do timed "control-plane images $k8s" build_image_archive "$k8s"; done
    timed "storage and pod network images" build_addon_archive
    build_node_images
    prune_cache
    say "lab ready in $((SECONDS - started)) s (cache: $LAB); pytest options per variant:"
    for v in "${VARIANTS[@]}"; do options_line "$v"; done
}

case "${1:-build}" in
    build) build ;;
    options)
        if [ -n "${2:-}" ]; then options_line "$2"; else for v in "${VARIANTS[@]}"; do options_line "$v"; done; fi ;;
    pytest)
        shift
        variant=${VARIANTS[-1]}
        if [ "${1:-}" = --variant ]; then variant=$2; shift 2; fi
        known_variant "$variant"
        docker image inspect "$(variant_image "$variant")" >/dev/null 2>&1 || die "no lab image for $variant: run scripts/kind-lab.sh build"
        read -ra opts <<<"$(options_line "$variant")"
        py=$(kindreg_python) || exit 1
        guard "$py" -m pytest "${opts[@]}" "$@" ;;
    guard) shift; guard "$@" ;;
    variants) printf '%s\n' "${VARIANTS[@]}" ;;
    *) die "unknown command $1 (build, options, pytest, variants, guard)" ;;
esac
