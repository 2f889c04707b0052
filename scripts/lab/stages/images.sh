# shellcheck shell=bash
# Stages: the images the nodes carry, as docker-archive tars in $LAB/images imported into every
# node (the control plane of each Kubernetes version as kubeadm names it; storage and the pod
# network), each built from the lab's own binaries.

lib_root() {  # $1 = work dir: fills $1/libs with the trixie root's binaries and libraries
    mkdir -p "$1/libs" && tar -C "$1/libs" -xf "$(rootfs_tarball)" \
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
