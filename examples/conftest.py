"""Shared configuration of the examples: how to override a pytest-kindreg fixture.

Every fixture of the plugin can be overridden by defining one with the same name in a
``conftest.py``; the override can take the plugin's own fixture as an argument to build on it.

``kindreg_test_image`` is the local image the examples push into the private registry. By
default it is ``kindreg-test/busybox:1.0`` (the ini key ``kindreg_test_image``), which
``kindreg build-images`` / ``pytest_kindreg/data/build-images.sh`` builds offline.

A team testing its own application would point it at its own image, either:

* without code, in ``pyproject.toml``::

      [tool.pytest.ini_options]
      kindreg_test_image = "acme/payments:1.4.2"

* or here, building the image first so the tests push exactly what CI built::

      @pytest.fixture(scope="session")
      def kindreg_test_image(kindreg_docker):
          image, _logs = kindreg_docker.images.build(path=".", tag="acme/payments:test")
          return "acme/payments:test"

Whatever it returns must be an image present in the local Docker engine, with a command
that keeps running under ``sleep 3600`` (the pods the examples start run ``sleep``).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kindreg_test_image(kindreg_test_image: str) -> str:
    # Build on the plugin's fixture: it reads the ini value and skips (or fails under
    # --kindreg-strict) with a clear hint when the image is not in the local engine.
    return kindreg_test_image
