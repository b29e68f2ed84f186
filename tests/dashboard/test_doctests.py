"""The dashboard modules' doctests (``dashboard/`` is not collected with --doctest-modules:
its page scripts draw when imported)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["dashboard.charts", "dashboard.context", "dashboard.drift_windows",
           "dashboard.navigation", "dashboard.performance_chart", "dashboard.views.drift",
           "dashboard.views.tails", "dashboard.views.dead_letters"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
