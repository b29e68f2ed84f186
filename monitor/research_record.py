"""Recording a research run: what ``monitor promote METRIC --to batch`` asks for.

A recorded run registers the metric's definition bound to its reference profile (a changed
definition becomes a new version), keeps that profile, and stores the run's values and
states as stage "research" — one transaction, through the store's
:class:`~monitor.storage.ports.ResearchRecorder` port. The values stored are the ones
:func:`monitor.research.run` returned, not computed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from metrics.drift import ReferenceProfile
from monitor.errors import DefinitionError
from monitor.references import References
from monitor.registry import Monitor
from monitor.research import ResearchResult
from monitor.spec import MetricSpec
from monitor.storage.ports import ProfileStore, ResearchRecorder
from monitor.storage.records import RecordedResearchRun


@dataclass(frozen=True)
class RunProfile:
    """The reference profile a recorded run compares against and stores."""

    profile: ReferenceProfile
    from_store: bool  # no file to fit it from: the latest one stored under its name


def profile_to_record(app: Monitor, metric: MetricSpec, paths: Mapping[str, str | Path],
                      profiles: ProfileStore) -> RunProfile | None:
    """The profile a recorded run of ``metric`` compares against; None without a reference.

    From the file ``paths`` gives for the reference's name (``--reference``, or the one the
    app declares): a profile JSON as it is, or data fitted over every column the app's
    metrics compare against this reference (and every score calibration they read), so the
    one stored profile (batch binds the latest stored under the name) serves them all.
    Without a file, the profile already stored under the name.
    """
    name = metric.aggregate.reference_name()
    if name is None:
        return None
    path = paths.get(name)
    if path is None or not Path(path).is_file():
        try:
            return RunProfile(profiles.load_profile(name), from_store=True)
        except LookupError:
            pass  # References below says what is missing
    sharing = [other.aggregate for other in app.metrics.values()
               if other.stream.name == metric.stream.name
               and other.aggregate.reference_name() == name]
    columns = sorted({column for aggregate in sharing for column in aggregate.columns()})
    calibrations = tuple(sorted({pair for aggregate in sharing
                                 for pair in aggregate.reference_calibrations()}))
    subject = f"metric {metric.name!r}"
    try:
        profile = References(paths=paths).profile(name, metric.stream.schema, columns,
                                                  calibrations)
    except (LookupError, ValueError) as err:
        raise DefinitionError(subject, str(err).strip("'\"")) from None  # a KeyError's quotes
    if profile.name != name:
        raise DefinitionError(
            subject, f"the reference profile in {path} is named {profile.name!r}, but the "
            f"metric compares against {name!r}; fit it with name={name!r}, pass the reference "
            "data instead, or try it with --no-store")
    return RunProfile(profile, from_store=False)


def record_run(store: ResearchRecorder, result: ResearchResult,
               profile: ReferenceProfile | None, *, by: str) -> RecordedResearchRun | None:
    """Record ``result`` (computed against ``profile``) as the research run of its metric;
    None, recording nothing, when no event fell in a window."""
    if not result.windows:
        return None
    return store.record_research_run(result.metric, result.windows, profile, by=by)
