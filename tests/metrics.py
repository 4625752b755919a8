"""Reading ``/metrics`` in tests: the Prometheus text format, parsed by prometheus_client's own
parser, as ``{(sample name, sorted labels): value}``."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def series(samples: Samples, name: str, **fixed: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` whose labels include ``fixed``, by their other labels."""
    found = {}
    for (sample, labels), value in samples.items():
        if sample != name or not set(fixed.items()) <= set(labels):
            continue
        found[tuple((k, v) for k, v in labels if k not in fixed)] = value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it was never counted (a labelled series appears on first use)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
