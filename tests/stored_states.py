"""Research's windows as the states a store reads back (the exports and pages read those)."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.storage.records import StoredState, WindowResult


def stored_states(windows: Iterable[WindowResult]) -> list[StoredState]:
    """Each of ``windows`` as a :class:`StoredState`; every window research makes keeps
    its state, so one without fails here rather than later."""
    stored = []
    for window in windows:
        assert window.state is not None, window
        stored.append(StoredState(window.segment, window.window_start, window.window_end,
                                  window.state, window.rows))
    return stored
