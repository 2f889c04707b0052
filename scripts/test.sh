#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. the plugin's own tests (unit, plugin, integration: a real Docker engine, registry and
#      containerd), where a missing Docker engine is an error, on the set-up's Python and then on
#      each other Python of 3.10-3.13 (KINDREG_OTHER_PYTHONS overrides; scripts/other-pythons.sh);
#   2. the built wheel, installed alone into a fresh virtualenv, running two examples on the lab
#      (scripts/check-wheel.sh) as a plain pytest run: no `kind-lab.sh guard`, and the host's
#      sysctls must be as they were afterwards (scripts/check-host-unchanged.sh);
#   3. on each kind lab variant (scripts/kind-lab.sh), the e2e tests and every example against
#      real kind clusters, with --kindreg-strict; in this stage a skip is a failure;
#   4. on the oldest and the newest variant, examples/token_auth (registries in token mode).
# Extra arguments go to every pytest run (e.g. -x, -k NAME).
# Needs scripts/setup.sh first (Docker engine, images, the kind lab).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=venv.sh
. scripts/venv.sh
PY=$(kindreg_python)

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT

counts() {  # counts JUNIT-XML: "tests failures errors skipped" of one pytest run
    "$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
print(*(sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")))
EOF
}

status=0
total=(0 0 0 0)
stage() {  # stage NAME SKIPS-ALLOWED PYTEST-COMMAND...
    local name=$1 skips_allowed=$2 rc=0
    shift 2
    echo "test: $name"
    "$@" --junitxml="$reports/$name.xml" "${extra[@]}" || rc=$?
    if [ "$rc" = 5 ]; then
        echo "test: $name collected no tests: that is a failure here" >&2
        status=1
        return
    fi
    [ "$rc" = 0 ] || status=1
    [ -f "$reports/$name.xml" ] || { status=1; return; }
    local c
    read -ra c <<<"$(counts "$reports/$name.xml")"
    for i in 0 1 2 3; do total[i]=$((total[i] + c[i])); done
    if [ "$skips_allowed" = no ] && [ "${c[3]}" != 0 ]; then
        echo "test: $name skipped ${c[3]} test(s); kind-level tests must run here" >&2
        status=1
    fi
}

extra=("$@")
# The lab's variants and the newest one's pytest options, first: a lab that cannot say them
# fails here, loudly (an empty options line would run the wheel stage on no lab at all).
variants=$(bash scripts/kind-lab.sh variants) || { echo "test: scripts/kind-lab.sh variants failed" >&2; exit 1; }
newest=$(tail -n 1 <<<"$variants")
if ! lab_line=$(bash scripts/kind-lab.sh options "$newest") || [ -z "$lab_line" ]; then
    echo "test: scripts/kind-lab.sh options $newest failed or printed nothing (is the lab built? bash scripts/kind-lab.sh build)" >&2
    exit 1
fi
read -ra lab_options <<<"$lab_line"

stage suite yes "$PY" -m pytest tests --ignore=tests/e2e --kindreg-require docker
# The same suites on the other Python versions the package claims (scripts/other-pythons.sh).
own=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for version in ${KINDREG_OTHER_PYTHONS-3.10 3.11 3.12 3.13}; do
    [ "$version" != "$own" ] || continue
    stage "python$version" yes bash scripts/other-pythons.sh "$version"
done
# The built wheel, installed alone, runs a Docker-level and a kind-level example on the lab, as
# a user's plain pytest run: the plugin itself must put back the sysctls kubelet changed.
stage wheel no bash scripts/check-host-unchanged.sh bash scripts/check-wheel.sh "${lab_options[@]}" -rs
for variant in $variants; do
    # The HA test (three control-plane nodes: minutes on two cores) runs on the default variant
    # only; deselected elsewhere, so that no stage counts it as a skip.
    only_default=()
    [ "$variant" = "$newest" ] || only_default=(--deselect tests/e2e/test_ha.py)
    stage "lab-$variant" no bash scripts/kind-lab.sh pytest --variant "$variant" tests/e2e examples "${only_default[@]}" \
        --kindreg-strict -p no:cacheprovider -rs
done

# Token mode (issue 18) on the oldest and the newest variant: examples/token_auth is a pytest
# project of its own, whose pytest.ini puts every registry in token mode.
oldest=$(head -n 1 <<<"$variants")
for variant in $(printf '%s\n' "$oldest" "$newest" | awk '!seen[$0]++'); do
    stage "token-$variant" no bash scripts/kind-lab.sh pytest --variant "$variant" examples/token_auth \
        --kindreg-strict -p no:cacheprovider -rs
done

passed=$((total[0] - total[1] - total[2] - total[3]))
echo "total: $passed passed, $((total[1] + total[2])) failed, ${total[3]} skipped"
exit "$status"
