#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. the plugin's own tests (unit, plugin, integration: a real Docker engine, registry and
#      containerd), where a missing Docker engine is an error, on the set-up's Python and then on
#      Python 3.10 and 3.13 (KINDREG_OTHER_PYTHONS, scripts/other-pythons.sh);
#   2. the built wheel, installed alone into a fresh virtualenv, running two examples on the lab
#      (scripts/check-wheel.sh);
#   3. on each kind lab variant (scripts/kind-lab.sh), the e2e tests and every example against
#      real kind clusters, with --kindreg-strict; in this stage a skip is a failure.
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
stage suite yes "$PY" -m pytest tests --ignore=tests/e2e --kindreg-require docker
# The same suites on the other Python versions the package claims (scripts/other-pythons.sh).
for version in ${KINDREG_OTHER_PYTHONS-3.10 3.13}; do
    stage "python$version" yes bash scripts/other-pythons.sh "$version"
done
# The built wheel, installed alone, runs a Docker-level and a kind-level example on the lab.
read -ra lab_options <<<"$(bash scripts/kind-lab.sh options "$(bash scripts/kind-lab.sh variants | tail -n 1)")"
stage wheel no bash scripts/kind-lab.sh guard bash scripts/check-wheel.sh "${lab_options[@]}" -rs
for variant in $(bash scripts/kind-lab.sh variants); do
    stage "lab-$variant" no bash scripts/kind-lab.sh pytest --variant "$variant" tests/e2e examples --kindreg-strict -p no:cacheprovider -rs
done

passed=$((total[0] - total[1] - total[2] - total[3]))
echo "total: $passed passed, $((total[1] + total[2])) failed, ${total[3]} skipped"
exit "$status"
