# shellcheck shell=bash
# Stage: the node root, Debian trixie by debootstrap with kind's package list (NODE_PACKAGES in
# context.sh), kept as a tarball in $LAB/rootfs keyed by that list.

# debootstrap_tarball TARBALL WHAT PACKAGE...: a Debian trixie root (minbase plus the packages),
# cleaned of apt lists and docs, saved as TARBALL; nothing to do when it exists.
debootstrap_tarball() {
    local tarball=$1 what=$2
    shift 2
    if [ -f "$tarball" ]; then say "$what (debootstrap trixie): cached"; return; fi
    say "$what: debootstrap trixie with $* (about a minute)"
    local dir mirror packages
    mirror=$(debian_mirror)
    dir=$(mktemp -d "$LAB/rootfs/build.XXXXXX")
    BUILD_DIRS+=("$dir" "$dir.log")
    packages=$(IFS=,; echo "$*")
    $SUDO debootstrap --variant=minbase --include="$packages" trixie "$dir" "$mirror" >"$dir.log" 2>&1 \
        || die "debootstrap failed: $(tail -n 3 "$dir.log")"
    $SUDO chroot "$dir" apt-get clean
    $SUDO rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/debconf/*-old "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
    $SUDO tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    $SUDO rm -rf "$dir" "$dir.log"
}

build_rootfs() { debootstrap_tarball "$(rootfs_tarball)" "node root" "${NODE_PACKAGES[@]}"; }
