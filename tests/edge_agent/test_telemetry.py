"""Latency histograms: bucket counts and percentile estimates checked against numpy on known
data, and percentiles that describe the last metrics interval only."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pytest

from edge_agent.telemetry import BOUNDS_MS, Histogram, quantile


def _filled(data: np.ndarray) -> Histogram:
    histogram = Histogram()
    for value in data.tolist():
        histogram.observe(value)
    return histogram


def test_bucket_counts_and_sum_match_numpy() -> None:
    """Test that cumulative bucket counts equal numpy's count of values <= each bound (a value
    on a bound belongs to that bound's bucket) and the sum equals numpy's sum."""
    rng = np.random.default_rng(7)
    data = np.concatenate([rng.lognormal(1.0, 2.5, 20_000), BOUNDS_MS, [0.0, 1e-9, 3.6e6]])
    histogram = _filled(data)
    expected = [int((data <= bound).sum()) for bound in BOUNDS_MS] + [len(data)]
    assert np.cumsum(histogram.counts()).tolist() == expected
    assert histogram.counts()[-1] == int((data > BOUNDS_MS[-1]).sum()) > 0
    payload = histogram.payload()
    assert payload["count"] == len(data)
    assert payload["sum"] == pytest.approx(float(data.sum()), abs=1e-3)
    assert sum(n for _, n in payload["buckets"]) == len(data)
    assert all(n > 0 for _, n in payload["buckets"]) and payload["buckets"][-1][0] is None


@pytest.mark.parametrize("q", [0.01, 0.25, 0.5, 0.9, 0.99])
def test_quantile_estimates_agree_with_numpy(q: float) -> None:
    """Test that an estimated quantile lies in the same bucket as numpy's exact one, and, for
    data spread evenly inside the buckets, within 1 % of the bucket's width of it."""
    rng = np.random.default_rng(11)
    skewed = rng.lognormal(0.5, 1.5, 50_000)
    estimate, exact = quantile(_filled(skewed).counts(), q), float(np.quantile(skewed, q))
    assert estimate is not None
    assert bisect_left(BOUNDS_MS, estimate) == bisect_left(BOUNDS_MS, exact)
    even = rng.uniform(0.0, 1000.0, 200_000)
    estimate, exact = quantile(_filled(even).counts(), q), float(np.quantile(even, q))
    index = bisect_left(BOUNDS_MS, exact)
    width = BOUNDS_MS[index] - (BOUNDS_MS[index - 1] if index else 0.0)
    assert estimate == pytest.approx(exact, abs=0.01 * width)


def test_quantile_edge_cases() -> None:
    """Test that no data gives None, one value gives a point inside its bucket, and values past
    the largest bound give that bound (as Prometheus' histogram_quantile does)."""
    assert quantile([0] * (len(BOUNDS_MS) + 1), 0.5) is None
    one = quantile(_filled(np.array([3.0])).counts(), 0.5)
    assert one is not None and 2.5 < one <= 5.0
    assert quantile(_filled(np.array([1e9, 2e9])).counts(), 0.99) == BOUNDS_MS[-1]


def test_percentiles_describe_the_last_closed_interval() -> None:
    """Test that p50/p99 come from what was observed between the last two rolls (None for an
    empty interval), while count and sum keep the lifetime totals."""
    histogram = Histogram()
    assert histogram.payload() == {"buckets": [], "count": 0, "sum": 0.0, "p50": None, "p99": None}
    for _ in range(1000):
        histogram.observe(0.3)
    histogram.roll()
    first = histogram.payload()
    assert 0.25 < first["p50"] <= 0.5 and 0.25 < first["p99"] <= 0.5
    for _ in range(1000):
        histogram.observe(30.0)
    assert histogram.payload()["p50"] == first["p50"]  # the open interval is not reported yet
    histogram.roll()
    second = histogram.payload()
    assert 25.0 < second["p50"] <= 50.0
    assert second["count"] == 2000 and second["sum"] == pytest.approx(30_300.0)
    histogram.roll()
    assert histogram.payload()["p50"] is None and histogram.payload()["count"] == 2000
