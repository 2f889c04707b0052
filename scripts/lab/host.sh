# shellcheck shell=bash
# What scripts/setup.sh and scripts/kind-lab.sh both ask of the host (sourced by both).

# The Debian archive this machine's apt already uses (never hard-coded), or nothing.
debian_archive() {
    local uri
    uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n 1 || true)
    echo "${uri%/}"
}

# True where the capability bounding set lacks CAP_SYS_RESOURCE (bit 24): runc then cannot start
# privileged containers, which kind's nodes are.
cap_sys_resource_missing() {
    local capbnd
    capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
    [ $(( 0x$capbnd >> 24 & 1 )) = 0 ]
}

# True when /usr/bin/kind is Debian trixie's kind 0.27.0, the lab's first kind CLI.
debian_kind_present() {
    [[ -x /usr/bin/kind && "$(/usr/bin/kind version 2>/dev/null)" == *" v0.27.0 "* ]]
}
