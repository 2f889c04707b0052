# shellcheck shell=bash
# Stages: the node images, built the way kind builds kindest/node, one named step each:
#   node base (shared by the variants of one base key; kind's images/base):
#     node root, kind's files, systemd units, Debian paths, Kubernetes, manifests,
#     host adaptations, import
#   the variant (kind's pkg/build/nodeimage, in a build container):
#     build container, containerd, images, commit
# then a copy of the finished image is saved in the lab cache.

# The node base being assembled (assemble_base's steps share it, like kind's buildContext).
BASE_VARIANT="" BASE_REF="" BASE_KEY="" BASE_ROOT="" BASE_KIND_DIR="" BASE_FILES=""

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
    local v=$1
    BASE_VARIANT=$v
    BASE_KEY=$(base_key "$v")
    BASE_REF="kindreg-lab/node-base:$BASE_KEY"
    BASE_IMAGES+=("$BASE_REF")
    if docker image inspect "$BASE_REF" >/dev/null 2>&1; then say "node base $BASE_REF: present"; return; fi
    say "node base ${V_K8S[$v]}: assembling kind's files (${V_KIND_BASE[$v]} module), Kubernetes ${V_K8S[$v]}, manifests"
    BASE_KIND_DIR=$(kind_module_dir "${V_KIND_BASE[$v]}")
    BASE_FILES="$BASE_KIND_DIR/images/base/files"
    local work
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    BASE_ROOT="$work/root"
    stage "node root" base_unpack_root
    stage "kind's files" base_kind_files
    stage "systemd units" base_systemd_units
    stage "Debian paths" base_debian_paths
    stage "Kubernetes" base_kubernetes
    stage "manifests" base_manifests
    stage "host adaptations" base_host_adaptations
    stage "import" base_import
    $SUDO rm -rf "$work"
}

base_unpack_root() {
    mkdir -p "$BASE_ROOT"
    $SUDO tar -C "$BASE_ROOT" -xf "$(rootfs_tarball)"
}

base_kind_files() {  # as kind's images/base/Dockerfile does (modes from its COPY --chmod lines)
    local root=$BASE_ROOT files=$BASE_FILES
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
}

base_systemd_units() {  # as kind's base image: no unit but kind's starts by itself
    local root=$BASE_ROOT
    $SUDO find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
    $SUDO rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
        "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
        "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" | $SUDO tee -a "$root/etc/systemd/journald.conf" >/dev/null
    $SUDO ln -sf /lib/systemd/systemd "$root/sbin/init"
    $SUDO systemctl --root="$root" enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    $SUDO systemctl --root="$root" mask systemd-binfmt.service >/dev/null 2>&1
}

base_debian_paths() {
    local root=$BASE_ROOT b p
    # Debian puts containerd in /usr/bin and CNI plugins in /usr/lib/cni; kind's units and
    # manifests expect /usr/local/bin and /opt/cni/bin.
    for b in containerd ctr containerd-shim-runc-v2; do $SUDO ln -sf "/usr/bin/$b" "$root/usr/local/bin/$b"; done
    for p in "$root"/usr/lib/cni/*; do $SUDO ln -sf "/usr/lib/cni/$(basename "$p")" "$root/opt/cni/bin/"; done
    # One machine id per node: kind's entrypoint writes /etc/machine-id; dbus must not keep its own.
    $SUDO truncate -s 0 "$root/etc/machine-id"
    $SUDO rm -f "$root/var/lib/dbus/machine-id" && $SUDO ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"
}

base_kubernetes() {  # what kind's node-image builder adds
    local root=$BASE_ROOT k8s_version=${V_K8S[$BASE_VARIANT]}
    local k8s="$LAB/bin/kubernetes-$k8s_version"
    $SUDO install -m 0755 "$k8s/kubeadm" "$k8s/kubelet" "$k8s/kubectl" "$root/usr/bin/"
    $SUDO install -m 0755 "$LAB/bin/crictl-$CRICTL_VERSION/crictl" "$root/usr/local/bin/"
    printf '%s' "$k8s_version" | $SUDO tee "$root/kind/version" >/dev/null
}

base_manifests() {
    local root=$BASE_ROOT
    # kind applies these on cluster creation: its own storage manifest with the lab's images, and
    # the lab's pod network (kind templates {{ .PodSubnet }} in it and adds CONTROL_PLANE_ENDPOINT).
    kind_storage_manifest "$BASE_KIND_DIR" | $SUDO tee "$root/kind/manifests/default-storage.yaml" >/dev/null
    sed "s#KINDREG_NET_IMAGE#$NET_IMAGE#" "$REPO/scripts/lab/node/default-cni.yaml" \
        | $SUDO tee "$root/kind/manifests/default-cni.yaml" >/dev/null
    $SUDO chmod 0644 "$root"/kind/manifests/*
}

base_host_adaptations() {
    local root=$BASE_ROOT k8s_version=${V_K8S[$BASE_VARIANT]} adapt
    adapt=" $(adaptations "$BASE_VARIANT") "
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
}

base_import() {
    $SUDO tar -C "$BASE_ROOT" --numeric-owner -c . | docker import \
        -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
        -c "LABEL io.kindreg.lab.key=$BASE_KEY" - "$BASE_REF" >/dev/null
}

# The variant being finished (finish_variant's steps share it).
FINISH_VARIANT="" FINISH_KEY="" FINISH_REF="" FINISH_CONTAINER="" FINISH_WORK=""

finish_variant() {  # finish_variant VARIANT KEY: containerd of the variant, images, metadata
    FINISH_VARIANT=$1
    FINISH_KEY=$2
    FINISH_REF=$(variant_image "$1")
    say "node image $FINISH_REF: installing containerd (${V_CONTAINERD[$1]}), importing the images"
    FINISH_WORK=$(mktemp -d)
    BUILD_DIRS+=("$FINISH_WORK")
    stage "build container" finish_build_container
    stage "containerd ${V_CONTAINERD[$1]}" finish_containerd
    stage "images" finish_images
    stage "commit" finish_commit
}

finish_build_container() {
    FINISH_CONTAINER=$(docker create --privileged --entrypoint /bin/sleep "$(base_image "$FINISH_VARIANT")" infinity)
    BUILD_CONTAINERS+=("$FINISH_CONTAINER")
    docker start "$FINISH_CONTAINER" >/dev/null
}

finish_containerd() {
    local c=$FINISH_CONTAINER
    docker exec "$c" cp /etc/containerd/config.toml /etc/containerd/config.toml.kindreg
    install_containerd "$FINISH_VARIANT" "$c" "$FINISH_WORK"
    docker exec "$c" rm /etc/containerd/config.toml.kindreg
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

finish_images() {
    local c=$FINISH_CONTAINER v=$FINISH_VARIANT
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
}

finish_commit() {
    local c=$FINISH_CONTAINER ref=$FINISH_REF
    docker stop -t 1 "$c" >/dev/null
    docker commit -c "LABEL io.kindreg.lab.key=$FINISH_KEY" "$c" "$ref.tmp" >/dev/null
    # STOPSIGNAL cannot be set by import/commit on older engines: a two-line build adds it.
    printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\nCMD []\n' "$ref.tmp" \
        | DOCKER_BUILDKIT=0 docker build -q -t "$ref" - >"$FINISH_WORK/build.log" 2>&1 \
        || die "docker build of $ref failed: $(tail -n 5 "$FINISH_WORK/build.log")"  # its deprecation notice is noise otherwise
    docker rmi "$ref.tmp" >/dev/null
    docker rm -f "$c" >/dev/null
}

BASE_IMAGES=()
build_node_image() {  # build_node_image VARIANT: present, loaded from the cache, or built and saved
    local v=$1 key ref old saved
    key=$(node_image_key "$v")
    ref=$(variant_image "$v")
    if node_image_present "$v"; then
        say "node image $ref: present"
        return
    fi
    # The image this one replaces goes once nothing uses it (a kept cluster keeps it).
    old=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
    saved=$(node_image_saved "$v")
    if [ -f "$saved" ]; then
        say "node image $ref: loading the cached copy"
        docker load -q -i "$saved" >/dev/null
    else
        stage "node base" assemble_base "$v"
        stage "variant" finish_variant "$v" "$key"
        say "node image $ref: saving a copy in the lab cache"
        rm -f "$LAB"/images/node-"$v"-*.tar
        docker save -o "$saved.tmp" "$ref" && mv "$saved.tmp" "$saved"
    fi
    [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
}

build_node_images() {
    local v
    for v in "${VARIANTS[@]}"; do stage "node image $(variant_image "$v")" build_node_image "$v"; done
    # The bases served every variant of their key: they go now.
    # shellcheck disable=SC2046  # one word per image
    [ ${#BASE_IMAGES[@]} = 0 ] || docker rmi $(uniq_words "${BASE_IMAGES[@]}") >/dev/null 2>&1 || true
}
