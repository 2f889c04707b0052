#!/usr/bin/env bash
# Build registry:2 and the test image offline; the script ships inside the package
# (also runnable as `kindreg build-images` once pytest-kindreg is installed).
exec bash "$(dirname "$0")/../pytest_kindreg/data/build-images.sh" "$@"
