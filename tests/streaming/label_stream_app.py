"""The label-join test app with topics, as ``monitor stream worker`` loads it in the label
join's end-to-end test (the test points the streams at topics of its own)."""

from __future__ import annotations

from tests.label_data import label_app

mon = label_app(lateness="2h", topics=("label-predictions", "label-outcomes"))
