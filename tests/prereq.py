"""Tests that need a program from the machine skip without it, with the reason printed,
except in CI as root: .ci/run installs every prerequisite (.ci/apt-packages.txt), so
there a missing one means a broken install step and must fail, not pass as skipped."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"{reason} (CI installs it: see .ci/apt-packages.txt)", pytrace=False)
    pytest.skip(reason)
