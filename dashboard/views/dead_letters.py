"""Dead letters: rejected input counted by reason, and recent samples (payload excerpts,
cut short and scrubbed of anything that looks like a secret)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.charts import bar_chart, series_chart
from dashboard.context import md, pick_range, require_data, settings
from monitor.spec import OVERALL
from streaming.dead_letter_tally import SAMPLES_PER_REASON

SAMPLE_CHARS = 240
SAMPLES = 50
COUNTS_VERSION = 1  # the streaming stage stores its dead-letter counts as version 1


def render() -> None:
    queries = require_data()
    scrub = settings().scrub
    st.title("Dead letters")
    counted = queries.dead_letters.count_metrics()
    if counted:
        st.subheader("Rejected input by reason")
        latest = max((t for t in (queries.values.latest_window(m) for m in counted)
                      if t is not None), default=None)
        span = pick_range(latest, key="dead_letter_range")
        counts = queries.dead_letters.metric_counts(span)
        if counts.empty:
            st.caption("Nothing was rejected in this range.")
        else:
            st.caption("Counted by the streaming stage (every rejected message, not only "
                       "the stored samples).")
            counts = counts.assign(reason=counts["reason"].map(scrub))
            st.altair_chart(bar_chart(counts, "reason", "count", color="metric"),
                            width="stretch")
            st.table(counts)
            for metric in counted:
                series = queries.values.series(metric, COUNTS_VERSION, span, window="1h",
                                               fields=["count"], segments=[OVERALL],
                                               stages=["streaming"])
                if not series.empty:
                    st.markdown(f"#### {md(metric)} per hour")
                    st.altair_chart(series_chart(series, title="rejected"), width="stretch")

    st.subheader("Stored samples by source and reason")
    stored = queries.dead_letters.counts()
    if stored.empty:
        st.success("No dead letters are stored.", icon=":material/check_circle:")
        return
    st.caption(f"Samples, not counts: the streaming stage stores at most "
               f"{SAMPLES_PER_REASON} of each reason per micro-batch (the counts above "
               "include every rejected message); the batch and research stages store all.")
    st.table(stored.assign(reason=stored["reason"].map(scrub),
                           latest=stored["latest"].dt.strftime("%Y-%m-%d %H:%M")))

    st.subheader("Recent samples")
    letters = queries.dead_letters.recent(SAMPLES)
    st.dataframe(pd.DataFrame([{
        "at (UTC)": letter.created_at, "source": letter.source,
        "reason": scrub(letter.reason), "payload excerpt": excerpt(scrub(letter.payload))}
        for letter in letters]), hide_index=True)


def excerpt(text: str, limit: int = SAMPLE_CHARS) -> str:
    """The start of a payload, cut at ``limit`` characters.

    >>> excerpt("x" * 500, 10)
    'xxxxxxxxx…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
