"""From a node profile to recommended image settings, with every number's arithmetic.

:func:`make_plan` is pure: a :class:`~mlnode.planning.profile.NodeProfile` in, a
:class:`Plan` out, no I/O. Inside: ``_formulas`` (footprints, pull time, need, thresholds,
GC ages, parallelism; its docstring has the formulas), ``_deadline`` (the pull progress
deadline), ``_assemble`` (the plan from its parts, and where each setting goes), ``_json``
(the ``mlnode.plan/v1`` document, written and read back).
"""

from __future__ import annotations

from mlnode.planning.plan._assemble import make_plan
from mlnode.planning.plan._deadline import PULL_DEADLINE_FLOOR_SECONDS, PULL_DEADLINE_SAFETY
from mlnode.planning.plan._formulas import (
    GC_PERIOD_SECONDS,
    MAXIMUM_GC_AGE_SECONDS,
    MIN_AGE_SAFETY,
)
from mlnode.planning.plan._json import load_plan_settings, plan_to_json
from mlnode.planning.plan._model import PLAN_SCHEMA, Home, Justification, Plan, PlanNumbers

# ML_DEFAULTS and MlDefault are re-exported: the defaults belong next to the planner.
from mlnode.planning.profile import ML_DEFAULTS, MlDefault

__all__ = [
    "GC_PERIOD_SECONDS",
    "MAXIMUM_GC_AGE_SECONDS",
    "MIN_AGE_SAFETY",
    "ML_DEFAULTS",
    "PLAN_SCHEMA",
    "PULL_DEADLINE_FLOOR_SECONDS",
    "PULL_DEADLINE_SAFETY",
    "Home",
    "Justification",
    "MlDefault",
    "Plan",
    "PlanNumbers",
    "load_plan_settings",
    "make_plan",
    "plan_to_json",
]
