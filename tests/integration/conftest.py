"""Test-directory hooks: failing comparisons of secret data are reported as digests, never values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.redact import redacted_compare


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> list[str] | None:
    return redacted_compare(op, left, right)
