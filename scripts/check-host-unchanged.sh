#!/usr/bin/env bash
# Run CMD, a plain pytest run that creates and deletes a kind cluster, with no `kind-lab.sh guard`
# around it, and check that it leaves the host's VM-wide sysctls as it found them:
#   scripts/check-host-unchanged.sh CMD...
# The sysctls are the ones kubelet rewrites (pytest_kindreg.host_sysctls.KUBELET_SYSCTLS). It fails
# when a value differs after CMD, and also when the check would prove nothing: another kind
# cluster runs (its kubelet holds the values), the host already holds kubelet's values for every
# one of them, or CMD's output lacks the plugin's line saying it put them back.
# Exits with CMD's status when the host is as found.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=venv.sh
. scripts/venv.sh
PY=$(kindreg_python)
say() { echo "check-host-unchanged: $*" >&2; }

kind_clusters() { docker ps --filter label=io.x-k8s.kind.cluster --format '{{.Label "io.x-k8s.kind.cluster"}}' | sort -u | xargs; }
# name=kubelet's value, one a line, from the package: one list for the plugin and this check.
mapfile -t kubelet < <("$PY" -c 'from pytest_kindreg.host_sysctls import KUBELET_SYSCTLS as k; print("\n".join(f"{n}={v}" for n, v in k.items()))')
values() {  # name=value of each, as /proc/sys holds it now
    local entry name
    for entry in "${kubelet[@]}"; do
        name=${entry%%=*}
        echo "$name=$(cat "/proc/sys/${name//.//}" 2>/dev/null || echo absent)"
    done
}

others=$(kind_clusters)
if [ -n "$others" ]; then
    say "kind cluster(s) $others already run: their kubelet holds the host's sysctls, so this check cannot tell; delete them and rerun"
    exit 1
fi
mapfile -t before < <(values)
differing=()
for i in "${!kubelet[@]}"; do
    [ "${before[i]}" = "${kubelet[i]}" ] || differing+=("${before[i]} (kubelet: ${kubelet[i]#*=})")
done
if [ ${#differing[@]} = 0 ]; then
    say "the host already holds kubelet's value for every sysctl (${kubelet[*]}): this check cannot tell whether the run puts them back"
    exit 1
fi
say "host before the run: ${differing[*]}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
"$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}

mapfile -t after < <(values)
status=0
for i in "${!before[@]}"; do
    if [ "${before[i]}" != "${after[i]}" ]; then
        say "the run left ${after[i]} (it was ${before[i]#*=})"
        status=1
    fi
done
if ! grep -q "put back the host's sysctls kubelet had changed" "$log"; then
    say "the run's output lacks the plugin's 'put back the host's sysctls kubelet had changed' line"
    status=1
fi
if [ "$status" != 0 ]; then
    others=$(kind_clusters)
    [ -z "$others" ] || say "note: kind cluster(s) $others run now (started meanwhile?)"
    say "the run did not leave the host as found"
    exit 1
fi
say "the host's sysctls are as they were before the run"
exit "$rc"
