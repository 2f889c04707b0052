# shellcheck shell=bash
# Stages: the Go programs, built from their modules in the Go module proxy into $LAB/bin (each
# keyed by its version: a binary that is there is kept).

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
    GOBIN="$out" CGO_ENABLED=0 go install -trimpath ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" "${pkgs[@]}" \
        2> >(grep -v '^go: downloading' >&2)
    [ -x "$out/$binary" ] || die "go install ${pkgs[*]} made no $binary in $out"
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
    mkdir -p "$src" "$etcd"
    printf 'module kindreg.lab/etcd\n\ngo 1.23\n' >"$src/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$src/tools.go"
    (cd "$src" && go get "go.etcd.io/etcd/server/v3@$version" && go mod tidy) >/dev/null 2>&1 \
        || die "cannot resolve go.etcd.io/etcd/server/v3@$version from the Go module proxy"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd/etcd" go.etcd.io/etcd/server/v3)
}

build_pause() {  # pause from scripts/lab/pause.c, keyed by its source
    local pause
    pause=$(pause_bin)
    [ ! -x "$pause" ] || { say "pause: cached"; return; }
    mkdir -p "$(dirname "$pause")"
    gcc -static -O2 -s -o "$pause" "$REPO/scripts/lab/pause.c"
}

build_go_tools() {  # every Go program the variants need but Kubernetes itself, one stage each
    local v k8s seen_kind=() etcd coredns
    for v in "${VARIANTS[@]}"; do
        [ "${V_KIND[$v]}" != debian ] || continue
        [[ " ${seen_kind[*]} " != *" ${V_KIND[$v]} "* ]] || continue
        seen_kind+=("${V_KIND[$v]}")
        stage "kind ${V_KIND[$v]}" go_install "kind-${V_KIND[$v]}" "${V_KIND[$v]}" kind "" "" sigs.k8s.io/kind
    done
    stage "crictl $CRICTL_VERSION" go_install "crictl-$CRICTL_VERSION" "$CRICTL_VERSION" crictl \
        "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "" sigs.k8s.io/cri-tools/cmd/crictl
    for k8s in $(k8s_versions); do
        coredns=$(kubeadm_image "$k8s" coredns/coredns)
        stage "coredns $coredns" go_install "coredns-$coredns" "$coredns" coredns "" "" github.com/coredns/coredns
        etcd=$(kubeadm_image "$k8s" etcd)
        stage "etcd v${etcd%-*}" build_etcd "v${etcd%-*}"
    done
    for v in "${VARIANTS[@]}"; do
        case "${V_CONTAINERD[$v]}" in
            trixie|sid) ;;
            v*) local c=${V_CONTAINERD[$v]}
                # Static (no cgo), without btrfs (its headers would need cgo); the version ldflag
                # makes `containerd --version` print vX.Y.Z, not X.Y.Z+unknown, for tools that parse it.
                stage "containerd $c" go_install "containerd-$c" "$c" containerd-shim-runc-v2 \
                    "-X github.com/containerd/containerd/v2/version.Version=$c" no_btrfs \
                    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr \
                    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 ;;
        esac
    done
    stage "local-path-provisioner $LPP_VERSION" go_install "local-path-provisioner-$LPP_VERSION" "$LPP_VERSION" \
        local-path-provisioner "-X main.VERSION=$LPP_VERSION" "" github.com/rancher/local-path-provisioner
    stage "pause" build_pause
}
