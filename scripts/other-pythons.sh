#!/usr/bin/env bash
# The unit, plugin and integration suites on other Python versions than the set-up's, each in a
# virtualenv of its own under .venvs/ (never the system interpreter):
#   scripts/other-pythons.sh VERSION [PYTEST-ARGS...]    e.g. 3.12
# The interpreter is python<VERSION> on PATH, else pyenv's newest <VERSION>.x (this kind of
# machine ships pyenv builds of 3.10, 3.12 and 3.13); none is a failure that says how to get one,
# and so is a failed install.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=venv.sh
. scripts/venv.sh
version=$1
shift

interpreter=""
# pyenv's shims answer to python3.X even when that version is not selected: try each candidate.
for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
    $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python3 2>/dev/null | sort -rV); do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
        interpreter=$candidate
        break
    fi
done
if [ -z "$interpreter" ]; then
    echo "other-pythons: no Python $version here: install one (pyenv install $version, or Debian's python$version) and rerun" >&2
    exit 1
fi
venv=.venvs/py$version
if [ ! -x "$venv/bin/python" ] || [ "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')" != "$("$interpreter" -c 'import sys; print(sys.base_prefix)')" ]; then
    rm -rf "$venv"
    "$interpreter" -m venv "$venv"
fi
pip_install "$venv/bin/python" -e ".[test]"
echo "other-pythons: $("$venv/bin/python" --version) ($interpreter)" >&2
exec "$venv/bin/python" -m pytest tests --ignore=tests/e2e --kindreg-require docker "$@"
