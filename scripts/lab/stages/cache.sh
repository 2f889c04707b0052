# shellcheck shell=bash
# Stage: cache pruning. Archives and node roots that no current key names (older revisions and
# versions) are removed; the Go builds are kept (keyed by version, reused when one comes back).

prune_cache() {
    local keep=() f k8s
    keep+=("$(addon_archive)" "$(rootfs_tarball)" "$(lb_root_tarball)")
    for k8s in $(k8s_versions); do keep+=("$(control_plane_archive "$k8s")"); done
    for f in "$LAB"/images/control-plane-*.tar "$LAB"/images/addons-*.tar "$LAB"/rootfs/trixie-*.tar \
        "$LAB"/rootfs/loadbalancer-trixie-*.tar; do
        [ -e "$f" ] || continue
        [[ " ${keep[*]} " == *" $f "* ]] || { say "cache: removing $(basename "$f") (no current key names it)"; rm -f "$f"; }
    done
}
