# shellcheck shell=bash
# The virtualenv the scripts install into and run pytest from (sourced by setup.sh, test.sh,
# kind-lab.sh and .ci/run): the active one ($VIRTUAL_ENV) if there is one, else .venv in the
# checkout. Never the system interpreter.
kindreg_venv() {
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        echo "$VIRTUAL_ENV"
    else
        echo "$top/.venv"
    fi
}

# The virtualenv's python, or a one-line error saying how to get it.
kindreg_python() {
    local venv
    venv=$(kindreg_venv)
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pytest_kindreg' 2>/dev/null; then
        echo "no virtualenv with pytest-kindreg at $venv: run scripts/setup.sh (it creates it)" >&2
        return 1
    fi
    echo "$venv/bin/python"
}
