"""Golden values for the feature functions, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.frontend import features
from edge_agent.frontend.steps import EnvelopeBands, SpectrumBands


def _envelope(window: np.ndarray, rate: float, carrier: tuple[float, float], length=None):
    """Channel-major envelope of a (time, channels) window."""
    spectrum = np.fft.rfft(features.as_rows(window), axis=1)
    return features.envelope_rows(spectrum, window.shape[0], rate, carrier, length)


def test_stats_hand_worked() -> None:
    """Test rms, peak, crest and kurtosis on [1, -1, 1, -1] and [0, 0, 0, 4]."""
    window = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 4.0]])
    names = ("rms", "peak", "crest", "kurtosis", "mean", "std")
    table = features.stats_rows(features.as_rows(window), names)
    # Channel 0: square wave, rms 1, peak 1, crest 1, kurtosis 1 (no tails at all).
    np.testing.assert_allclose(table[:, 0], [1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    # Channel 1: mean 1, deviations [-1,-1,-1,3]: var 3, m4 = (1+1+1+81)/4 = 21, kurt 21/9.
    # rms = sqrt(16/4) = 2, peak 4, crest 2.
    np.testing.assert_allclose(table[:, 1], [2.0, 4.0, 2.0, 21.0 / 9.0, 1.0, np.sqrt(3.0)])


def test_stats_of_silence_are_zero_not_nan() -> None:
    """Test that an all-zero window gives 0 crest and kurtosis instead of NaN."""
    table = features.stats_rows(np.zeros((1, 8)), ("crest", "kurtosis"))
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
    step = SpectrumBands(n_bands=5, f_min=0.0, f_max=500.0, spacing="linear", log=False)
    bands = step.apply(window, rate)
    assert np.argmax(bands[:, 0]) == 1
    # np.hanning is the symmetric window (sum (n-1)/2 not n/2): 0.2% high, hence rtol.
    np.testing.assert_allclose(bands[1, 0], 0.25 * 1.25, rtol=3e-3)
    np.testing.assert_allclose(bands.sum(), 0.25 * 1.5, rtol=3e-3)
    # The periodic Hann window has exactly those weights.
    periodic = step.model_copy(update={"taper": "hann_periodic"}).apply(window, rate)
    np.testing.assert_allclose(periodic[1, 0], 0.25 * 1.25, rtol=1e-12)
    np.testing.assert_allclose(periodic.sum(), 0.25 * 1.5, rtol=1e-12)


def test_envelope_recovers_amplitude_modulation() -> None:
    """Test that the envelope of a 2 kHz carrier modulated at 50 Hz is 1 + 0.5 cos(2pi 50 t)."""
    rate, n = 20000.0, 4000
    t = np.arange(n) / rate
    modulation = 1.0 + 0.5 * np.cos(2 * np.pi * 50.0 * t)
    signal = (modulation * np.sin(2 * np.pi * 2000.0 * t))[:, None]
    env = _envelope(signal, rate, (1000.0, 3000.0))[0]
    np.testing.assert_allclose(env[200:-200], modulation[200:-200], atol=1e-6)


def test_envelope_bands_peak_at_modulation_rate() -> None:
    """Test that the envelope spectrum of that signal peaks in the band holding 50 Hz."""
    rate, n = 20000.0, 4000
    t = np.arange(n) / rate
    signal = ((1.0 + 0.5 * np.cos(2 * np.pi * 50.0 * t)) * np.sin(2 * np.pi * 2000.0 * t))[:, None]
    for method in ("hilbert", "demodulate"):
        step = EnvelopeBands(
            carrier_hz=(1000.0, 3000.0), n_bands=10, f_min=0.0, f_max=200.0, method=method
        )
        bands = step.apply(signal, rate)
        assert np.argmax(bands[:, 0]) == 2, method  # 20 Hz wide bands: 40-60 Hz is band 2


def test_hilbert_envelope_equals_the_textbook_analytic_signal() -> None:
    """Test that the envelope from the band's rfft bins moved to 0 Hz equals |ifft(2 * mask *
    fft(x))| over the whole window (how it was computed before), on noise, to rounding."""
    rate, n = 25600.0, 8192
    window = np.random.default_rng(3).normal(size=(n, 3))
    freqs = np.fft.fftfreq(n, d=1.0 / rate)
    keep = (freqs >= 1500.0) & (freqs < 8000.0)
    textbook = np.abs(np.fft.ifft(np.fft.fft(window, axis=0) * (2.0 * keep)[:, None], axis=0))
    np.testing.assert_allclose(_envelope(window, rate, (1500.0, 8000.0)).T, textbook, atol=1e-12)


def test_demodulated_envelope_is_the_full_envelope_sampled_sparsely() -> None:
    """Test that with a length of n / 4 the demodulated envelope equals every 4th sample of the
    full-length one (the band is 400 bins wide, under 1000), amplitude kept."""
    rate, n = 20000.0, 4000
    window = np.random.default_rng(4).normal(size=(n, 2))
    full = _envelope(window, rate, (1000.0, 3000.0))
    short = _envelope(window, rate, (1000.0, 3000.0), length=n // 4)
    assert short.shape == (2, n // 4)
    np.testing.assert_allclose(short, full[:, ::4], rtol=1e-9, atol=1e-12)


def test_demodulated_length_for_the_vibration_bundles() -> None:
    """Test the envelope length for 8192 samples at 25.6 kHz, carrier 1.5-8 kHz, bands up to bin
    320 (1 kHz): the band is bins 480-2559 (2080 wide), so 2080 + 320 = 2400 = 2^5 * 3 * 5^2."""
    assert features.demodulated_length(8192, 25600.0, (1500.0, 8000.0), 320) == 2400
    # 2401 is 7^4: rounded up to 2430 = 2 * 3^5 * 5.
    assert features.demodulated_length(8192, 25600.0, (1500.0, 8000.0), 321) == 2430
    # A band over the whole spectrum (bins 1-244 of 490) needs 490 -> 500, more than the window.
    assert features.demodulated_length(490, 25600.0, (50.0, 12800.0), 245) == 490


@pytest.mark.parametrize("n", [64, 63])
def test_periodic_hann_power_equals_tapering_before_the_fft(n: int) -> None:
    """Test that the periodic Hann power spectrum made from the untapered rfft (kernel -1/4, 1/2,
    -1/4, conjugate neighbours past both ends) equals |rfft(x * taper)|^2 / sum(taper)^2, for an
    even and an odd length."""
    rows = np.random.default_rng(5).normal(size=(2, n))
    taper = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    direct = np.abs(np.fft.rfft(rows * taper, axis=1)) ** 2 / taper.sum() ** 2
    derived = features.periodic_hann_power(np.fft.rfft(rows, axis=1), n)
    np.testing.assert_allclose(derived, direct, rtol=1e-10, atol=1e-15)
