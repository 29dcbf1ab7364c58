"""Golden values for the feature functions, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.frontend import features


def test_stats_hand_worked() -> None:
    """Test rms, peak, crest and kurtosis on [1, -1, 1, -1] and [0, 0, 0, 4]."""
    window = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 4.0]])
    table = features.stats(window, ("rms", "peak", "crest", "kurtosis", "mean", "std"))
    # Channel 0: square wave, rms 1, peak 1, crest 1, kurtosis 1 (no tails at all).
    np.testing.assert_allclose(table[:, 0], [1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    # Channel 1: mean 1, deviations [-1,-1,-1,3]: var 3, m4 = (1+1+1+81)/4 = 21, kurt 21/9.
    # rms = sqrt(16/4) = 2, peak 4, crest 2.
    np.testing.assert_allclose(table[:, 1], [2.0, 4.0, 2.0, 21.0 / 9.0, 1.0, np.sqrt(3.0)])


def test_stats_of_silence_are_zero_not_nan() -> None:
    """Test that an all-zero window gives 0 crest and kurtosis instead of NaN."""
    table = features.stats(np.zeros((8, 1)), ("crest", "kurtosis"))
    np.testing.assert_array_equal(table, [[0.0], [0.0]])


def test_band_bin_edges_linear_hand_worked() -> None:
    """Test that 4 linear bands over 0-400 Hz at 1 kHz, n=10 (100 Hz bins) are 1 bin each."""
    edges = features.band_bin_edges(10, 1000.0, 0.0, 400.0, 4, "linear")
    np.testing.assert_array_equal(edges, [0, 1, 2, 3, 4])


def test_band_bin_edges_log_never_empty() -> None:
    """Test that log bands finer than the FFT resolution still get one bin each."""
    edges = features.band_bin_edges(64, 64.0, 1.0, 16.0, 8, "log")
    assert np.all(np.diff(edges) >= 1)
    assert edges[0] == 1 and edges[-1] == 16


def test_band_bin_edges_too_many_bands_rejected() -> None:
    """Test that asking for more bands than FFT bins is a clear error."""
    with pytest.raises(ValueError, match="FFT bins"):
        features.band_bin_edges(8, 8.0, 0.5, 4.0, 10, "linear")


def test_spectrum_bands_puts_a_tone_in_its_band() -> None:
    """Test that a unit 100 Hz tone puts power 0.25 * (1 + 1/4) into the 100-200 Hz band.

    Hann's DFT has weights -1/4, 1/2, -1/4, so a bin-centred tone fills bins 99, 100, 101 with
    amplitudes in ratio 1/2 : 1 : 1/2; with the taper-sum normalisation the peak bin holds
    (A/2)^2 = 0.25. Band 1 (100-200 Hz) holds bins 100 and 101: 0.25 + 0.25/4.
    """
    rate, n = 1000.0, 1000
    t = np.arange(n) / rate
    window = np.sin(2 * np.pi * 100.0 * t)[:, None]
    bands = features.spectrum_bands(window, rate, 5, 0.0, 500.0, "linear", log=False)
    assert np.argmax(bands[:, 0]) == 1
    # np.hanning is the symmetric window (sum (n-1)/2 not n/2): 0.2% high, hence rtol.
    np.testing.assert_allclose(bands[1, 0], 0.25 * 1.25, rtol=3e-3)
    np.testing.assert_allclose(bands.sum(), 0.25 * 1.5, rtol=3e-3)


def test_envelope_recovers_amplitude_modulation() -> None:
    """Test that the envelope of a 2 kHz carrier modulated at 50 Hz is 1 + 0.5 cos(2pi 50 t)."""
    rate, n = 20000.0, 4000
    t = np.arange(n) / rate
    modulation = 1.0 + 0.5 * np.cos(2 * np.pi * 50.0 * t)
    signal = (modulation * np.sin(2 * np.pi * 2000.0 * t))[:, None]
    env = features.envelope(signal, rate, (1000.0, 3000.0))[:, 0]
    np.testing.assert_allclose(env[200:-200], modulation[200:-200], atol=1e-6)


def test_envelope_bands_peak_at_modulation_rate() -> None:
    """Test that the envelope spectrum of that signal peaks in the band holding 50 Hz."""
    rate, n = 20000.0, 4000
    t = np.arange(n) / rate
    signal = ((1.0 + 0.5 * np.cos(2 * np.pi * 50.0 * t)) * np.sin(2 * np.pi * 2000.0 * t))[:, None]
    bands = features.envelope_bands(signal, rate, (1000.0, 3000.0), 10, 0.0, 200.0, "linear", True)
    assert np.argmax(bands[:, 0]) == 2  # bands are 20 Hz wide: 40-60 Hz is band 2
