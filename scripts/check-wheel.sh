#!/usr/bin/env bash
# The package as users get it: build the sdist and the wheel, check their metadata (twine), install
# the wheel alone into a fresh virtualenv, and run a Docker-level and a kind-level example from it,
# outside the checkout, so nothing of the source tree is imported.
#   scripts/check-wheel.sh [PYTEST-ARGS...]   (extra arguments go to pytest, e.g. the lab's options)
# Needs scripts/setup.sh first (the virtualenv with the release extra, Docker, images, kind).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=venv.sh
. scripts/venv.sh
PY=$(kindreg_python)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "check-wheel: $*" >&2; }
say "building the sdist and the wheel"
"$PY" -m build --sdist --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { tail -n 20 "$work/build.log" >&2; say "python -m build failed"; exit 1; }
"$PY" -m twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/*.whl)
# What the plugin needs at run time: the type marker and the offline image builder.
for file in pytest_kindreg/py.typed pytest_kindreg/data/build-images.sh; do
    "$PY" -c 'import sys, zipfile; sys.exit(sys.argv[2] not in zipfile.ZipFile(sys.argv[1]).namelist())' "$wheel" "$file" \
        || { say "the wheel lacks $file"; exit 1; }
done

say "installing $(basename "$wheel") alone into a fresh virtualenv"
"$PY" -m venv "$work/venv"
pip_install "$work/venv/bin/python" "$wheel"
mkdir "$work/run"
cp examples/conftest.py examples/test_private_registry.py examples/test_pull_secret.py "$work/run/"
cd "$work/run"
"$work/venv/bin/python" - <<'PY'
import sys

import pytest_kindreg

# Imported from the fresh virtualenv's site-packages, never from the checkout.
assert pytest_kindreg.__file__.startswith(sys.prefix), pytest_kindreg.__file__
print(f"check-wheel: pytest-kindreg {pytest_kindreg.__version__} from {pytest_kindreg.__file__}")
PY
"$work/venv/bin/kindreg" --version
"$work/venv/bin/kindreg" build-images >/dev/null  # the packaged script runs (images present: kept)
"$work/venv/bin/python" -m pytest -p no:cacheprovider -p pytester --kindreg-strict "$@" test_private_registry.py test_pull_secret.py
