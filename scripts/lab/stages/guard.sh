# shellcheck shell=bash
# `kind-lab.sh guard CMD...`: the host's kernel settings kubelet rewrites (a node is privileged;
# these sysctls are VM-wide), recorded before CMD and put back once no kind cluster is left.

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
