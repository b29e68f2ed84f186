"""What every drift aggregate shares: a reference profile named, then bound.

A drift aggregate is defined against a reference profile by *name* (``"training"``); the
Monitor, or a test, binds the fitted profile with :meth:`bind_reference`. The bound
profile's id is one of the aggregate's parameters, so refitting the reference gives a new
aggregate id, while the profile itself (bins and counts) is not repeated in every
definition. Rebuilding a bound aggregate from its parameters keeps the profile id but not
the profile: bind it again before making states.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Self, cast

import pandas as pd

from metrics.base import Aggregate
from metrics.drift.profile import ReferenceProfile
from metrics.groups import Groups

__all__ = ["ReferenceBound", "check_base", "split_reference"]


class ReferenceBound(Aggregate):
    """Base of the drift aggregates: the reference name and the optionally bound profile.

    Subclasses are frozen dataclasses declaring ``reference`` and, keyword-only,
    ``profile_id`` (part of the id) and ``profile`` (left out of equality and the id).
    """

    reference: str
    profile_id: str | None
    profile: ReferenceProfile | None

    def __post_init__(self) -> None:
        if not isinstance(self.reference, str) or not self.reference:
            raise ValueError(
                f"{self.kind} needs the name of a reference profile, got {self.reference!r}"
            )
        if self.profile is not None:
            if not isinstance(self.profile, ReferenceProfile):
                raise ValueError(
                    f"{self.kind} binds a ReferenceProfile, got {type(self.profile).__name__}"
                )
            self.check_profile(self.profile)
            object.__setattr__(self, "profile_id", self.profile.id)

    def check_profile(self, profile: ReferenceProfile) -> None:
        """Raise ValueError, naming the column, if ``profile`` cannot serve this aggregate."""

    def reference_name(self) -> str | None:
        return self.reference

    def bind_reference(self, profile: ReferenceProfile) -> Self:
        """A copy comparing against ``profile``; ValueError if it lacks a column or its type."""
        return cast(Self, dataclasses.replace(cast(Any, self), profile=profile))

    def bound_profile(self) -> ReferenceProfile:
        if self.profile is None:
            raise ValueError(
                f"{self.kind} compares against the reference profile {self.reference!r}, which "
                f"is not bound: fit it with ReferenceProfile.fit(reference_df, "
                f"name={self.reference!r}) and pass it to bind_reference (a Monitor binds "
                f"the profiles registered under that name)"
            )
        return self.profile

    def update_groups(self, states: Sequence[Any], frame: pd.DataFrame, groups: Groups
                      ) -> None:
        """Drift states (a BinCountsState each) convert a numeric column once for all."""
        if states:
            states[0].update_groups(states, frame, groups)

    def params(self) -> dict[str, Any]:
        """The parameters, with the bound profile's id in place of the profile."""
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(cast(Any, self))
            if f.name != "profile"
        }


def split_reference(reference: str | ReferenceProfile) -> dict[str, Any]:
    """Constructor arguments for a reference given by name or as a fitted profile."""
    if isinstance(reference, ReferenceProfile):
        return {"reference": reference.name, "profile": reference}
    return {"reference": reference}


def check_base(kind: str, base: float) -> None:
    if not (isinstance(base, int | float) and math.isfinite(base) and base > 0 and base != 1):
        raise ValueError(f"{kind}: the log base must be a positive number other than 1, got "
                         f"{base!r}")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
