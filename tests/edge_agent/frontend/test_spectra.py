"""Spectra shared between models on one source: computed once, found by content, never stale."""

from __future__ import annotations

import numpy as np
from pydantic import TypeAdapter

from edge_agent.frontend.spectra import SpectraCache
from edge_agent.frontend.steps import FeaturePipeline, Step, compile_steps

RATE = 1000.0
ENVELOPE = {"op": "envelope_bands", "carrier_hz": [100, 400], "n_bands": 8, "f_min": 1}
CLASSIFIER = [
    {"op": "remove_mean"},
    {
        "op": "concat",
        "axis": "channels",
        "branches": [
            [{"op": "spectrum_bands", "n_bands": 8, "f_min": 1, "f_max": 400, "spacing": "log"}],
            [{**ENVELOPE, "f_max": 50}],
        ],
    },
]
DETECTOR = [
    {"op": "remove_mean"},
    {
        "op": "concat",
        "axis": "flat",
        "branches": [
            [{"op": "stats"}],
            [{"op": "spectrum_bands", "n_bands": 4, "f_min": 1, "f_max": 400}],
            [{**ENVELOPE, "f_max": 50, "method": "demodulate"}],
        ],
    },
]


def _pipeline(raw: list[dict], cache: SpectraCache | None = None) -> FeaturePipeline:
    return FeaturePipeline(TypeAdapter(list[Step]).validate_python(raw), RATE, cache)


def test_two_models_share_one_windows_spectra_with_identical_features() -> None:
    """Test that two models on one cache, each fed its own copy of every window, compute each
    window's spectra once (one miss, then hits) and give exactly the bytes they give alone."""
    windows = np.random.default_rng(0).normal(size=(4, 512, 3)).astype(np.float32)
    cache = SpectraCache()
    classifier, detector = _pipeline(CLASSIFIER, cache), _pipeline(DETECTOR, cache)
    alone = _pipeline(CLASSIFIER), _pipeline(DETECTOR)
    for window in windows:
        shared = classifier(window.copy()), detector(window.copy())
        assert [a.tobytes() for a in shared] == [p(window).tobytes() for p in alone]
    # Per window: the classifier's spectrum step misses, then its envelope step and the
    # detector's stats, spectrum and envelope steps all find it.
    assert (cache.misses, cache.hits) == (4, 4 * 4)


def test_a_window_changed_in_place_is_not_served_stale_spectra() -> None:
    """Test that a caller reusing one array for the next window gets that window's spectra."""
    steps = TypeAdapter(list[Step]).validate_python(
        [{"op": "spectrum_bands", "n_bands": 4, "f_min": 1, "f_max": 400}]
    )
    run = compile_steps(steps, RATE, SpectraCache())
    rng = np.random.default_rng(1)
    buffer = rng.normal(size=(256, 2))
    first = run(buffer)
    buffer *= 3.0
    assert np.array_equal(run(buffer), compile_steps(steps, RATE)(buffer.copy()))
    assert not np.array_equal(run(buffer), first)


def test_the_same_values_in_another_dtype_are_another_window() -> None:
    """Test that float32 and float64 copies of one window do not share spectra: numpy computes
    each in its own precision, so a hit would hand one the other's rounding."""
    cache = SpectraCache()
    window = np.random.default_rng(2).normal(size=(128, 1)).astype(np.float32)
    assert cache.of(window) is not cache.of(window.astype(np.float64))
    assert (cache.misses, cache.hits) == (2, 0)
