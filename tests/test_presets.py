"""The presets users call (``metrics.quantiles``, ``metrics.psi`` ...): each shows a runnable
example (run with the library's doctests), and defaults to what its aggregate does."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

import metrics
from metrics.base import Aggregate


def presets() -> dict[str, Callable[..., Any]]:
    """The functions ``metrics`` exports that return an aggregate."""
    found: dict[str, Callable[..., Any]] = {}
    for name in metrics.__all__:
        value = getattr(metrics, name)
        if inspect.isfunction(value):
            returns = typing.get_type_hints(value).get("return")
            if (isinstance(returns, type) and issubclass(returns, Aggregate)
                    and returns is not Aggregate):
                found[name] = value
    return found


PRESETS = presets()


def test_the_presets_are_found() -> None:
    assert {"count", "quantiles", "psi", "drift_report", "auc"} <= PRESETS.keys()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_shows_a_runnable_example(name: str) -> None:
    [docs] = doctest.DocTestFinder(recurse=False).find(PRESETS[name], name)
    assert docs.examples, f"metrics.{name} has no example in its docstring"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_defaults_to_what_its_aggregate_does(name: str) -> None:
    preset = PRESETS[name]
    aggregate = typing.get_type_hints(preset)["return"]
    defaults = {f.name: f.default for f in dataclasses.fields(aggregate)
                if f.default is not dataclasses.MISSING}
    differ = {parameter.name: (parameter.default, defaults[parameter.name])
              for parameter in inspect.signature(preset).parameters.values()
              if parameter.name in defaults and parameter.default != defaults[parameter.name]}
    assert differ == {}
