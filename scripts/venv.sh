# shellcheck shell=bash
# The virtualenv the scripts install into and run pytest from (sourced by setup.sh, test.sh,
# check-wheel.sh, other-pythons.sh, kind-lab.sh and .ci/run): the active one ($VIRTUAL_ENV) if
# there is one, else .venv in the checkout. Never the system interpreter.
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

# pip_install PYTHON PIP-ARGS...: `PYTHON -m pip install -q PIP-ARGS`, silent when it works; when
# it fails, pip's whole output and a non-zero status (a failed install must stop the script).
pip_install() {
    local py=$1 out
    shift
    if ! out=$(PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q "$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "pip install $* failed (with $py): see above" >&2
        return 1
    fi
}
