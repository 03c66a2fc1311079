"""The environment the test run was started with, before tests/conftest.py points everything at loopback: the
end-to-end tests (tests/e2e) run the operator CLI with it, against a real deployed stack."""

from __future__ import annotations

import os

OPERATOR_ENVIRONMENT = dict(os.environ)
