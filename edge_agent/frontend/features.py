"""Pure feature functions on one window of shape (time, channels), float64 in, float64 out.

Predictive-maintenance staples: time-domain statistics that track impacts and energy, FFT band
energies for shaft-order faults, and the envelope spectrum that exposes bearing defect rates.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Spacing = Literal["linear", "log"]
StatName = Literal["rms", "peak", "crest", "kurtosis", "mean", "std"]
LOG_FLOOR = 1e-12


def stats(window: np.ndarray, names: tuple[StatName, ...]) -> np.ndarray:
    """Per-channel statistics, one row per name in `names` (shape (len(names), channels)).

    Degenerate windows give 0 for crest and kurtosis instead of dividing by zero.
    """
    mean = window.mean(axis=0)
    centred = window - mean
    var = (centred**2).mean(axis=0)
    rms = np.sqrt((window**2).mean(axis=0))
    peak = np.abs(window).max(axis=0)
    safe_rms = np.where(rms > 0, rms, 1.0)
    safe_var = np.where(var > 0, var, 1.0)
    table = {
        "rms": rms,
        "peak": peak,
        "crest": np.where(rms > 0, peak / safe_rms, 0.0),
        "kurtosis": np.where(var > 0, (centred**4).mean(axis=0) / safe_var**2, 0.0),
        "mean": mean,
        "std": np.sqrt(var),
    }
    return np.stack([table[name] for name in names])


def band_bin_edges(
    n_fft: int, sample_rate_hz: float, f_min: float, f_max: float, n_bands: int, spacing: Spacing
) -> np.ndarray:
    """Integer rfft-bin edges (n_bands + 1) of bands covering [f_min, f_max).

    Edges are rounded up to bins and forced strictly increasing, so every band holds at
    least one bin even where log spacing is finer than the FFT resolution.
    """
    n_bins = n_fft // 2 + 1
    if spacing == "log":
        edges_hz = np.geomspace(f_min, f_max, n_bands + 1)
    else:
        edges_hz = np.linspace(f_min, f_max, n_bands + 1)
    bins = np.ceil(edges_hz * n_fft / sample_rate_hz).astype(np.int64)
    for i in range(1, bins.size):
        bins[i] = max(bins[i], bins[i - 1] + 1)
    if bins[-1] > n_bins:
        raise ValueError(
            f"{n_bands} bands between {f_min} and {f_max} Hz need {bins[-1]} FFT bins, but a "
            f"{n_fft}-sample window at {sample_rate_hz} Hz has only {n_bins}"
        )
    return bins


def _band_power(spectrum_power: np.ndarray, edges: np.ndarray, log: bool) -> np.ndarray:
    bands = np.add.reduceat(spectrum_power[: edges[-1]], edges[:-1], axis=0)
    return np.log10(bands + LOG_FLOOR) if log else bands


def _power_spectrum(window: np.ndarray) -> np.ndarray:
    """One-sided power spectrum with a Hann taper, scaled so amplitude does not depend on length."""
    taper = np.hanning(window.shape[0])[:, None]
    spectrum = np.fft.rfft(window * taper, axis=0)
    return (np.abs(spectrum) ** 2) / (taper.sum() ** 2)


def spectrum_bands(
    window: np.ndarray,
    sample_rate_hz: float,
    n_bands: int,
    f_min: float,
    f_max: float,
    spacing: Spacing,
    log: bool,
) -> np.ndarray:
    """Band energies of the power spectrum, shape (n_bands, channels)."""
    edges = band_bin_edges(window.shape[0], sample_rate_hz, f_min, f_max, n_bands, spacing)
    return _band_power(_power_spectrum(window), edges, log)


def envelope(
    window: np.ndarray, sample_rate_hz: float, carrier_hz: tuple[float, float]
) -> np.ndarray:
    """Amplitude envelope of the signal band-passed to `carrier_hz` (FFT mask + analytic signal)."""
    n = window.shape[0]
    spectrum = np.fft.fft(window, axis=0)
    freqs = np.fft.fftfreq(n, d=1.0 / sample_rate_hz)
    keep = (freqs >= carrier_hz[0]) & (freqs < carrier_hz[1])
    analytic = np.fft.ifft(spectrum * (2.0 * keep)[:, None], axis=0)
    return np.abs(analytic)


def envelope_bands(
    window: np.ndarray,
    sample_rate_hz: float,
    carrier_hz: tuple[float, float],
    n_bands: int,
    f_min: float,
    f_max: float,
    spacing: Spacing,
    log: bool,
) -> np.ndarray:
    """Band energies of the envelope spectrum, shape (n_bands, channels)."""
    env = envelope(window, sample_rate_hz, carrier_hz)
    env = env - env.mean(axis=0)
    edges = band_bin_edges(window.shape[0], sample_rate_hz, f_min, f_max, n_bands, spacing)
    return _band_power(_power_spectrum(env), edges, log)
