# shellcheck shell=bash
# Stage: the node root, Debian trixie by debootstrap with kind's package list (NODE_PACKAGES in
# context.sh), kept as a tarball in $LAB/rootfs keyed by that list.

build_rootfs() {
    local tarball
    tarball=$(rootfs_tarball)
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
