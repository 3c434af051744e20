"""Suite-wide settings.

Hypothesis' per-example deadline (200 ms) measures the machine as much as the code: on a
loaded 2-core CI machine it fails tests that are correct. We do not assert wall-clock
limits in tests, so the deadline is off everywhere.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("mlnode", deadline=None, print_blob=True)
settings.load_profile("mlnode")
