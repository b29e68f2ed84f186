"""Scraping a worker's /healthz, /readyz and /metrics, as Prometheus and a probe would."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

PROBES_LINE = re.compile(r"probes and metrics on http://[^:]+:(\d+)/")


def probe_port(log: Path) -> int | None:
    """The port a worker started with ``--health-port 0`` logged, once it did."""
    found = PROBES_LINE.search(log.read_text(errors="replace")) if log.exists() else None
    return int(found.group(1)) if found else None


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def get_json(port: int, path: str) -> tuple[int, dict[str, Any]]:
    status, body = get(port, path)
    return status, json.loads(body)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def by_label(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
             label: str) -> dict[str, float]:
    """The samples of ``name`` keyed by one of their labels."""
    return {dict(labels)[label]: value for (sample, labels), value in found.items()
            if sample == name}
