"""Pure feature functions on one window of shape (time, channels), float64 in, float64 out.

Predictive-maintenance staples: time-domain statistics that track impacts and energy, FFT band
energies for shaft-order faults, and the envelope spectrum that exposes bearing defect rates.

Inside, a window is held channel-major, as `rows` of shape (channels, time): numpy reduces and
transforms a contiguous last axis many times faster than the first axis of a (time, 3) array.
`spectra.WindowSpectra` composes the `*_rows` functions and shares the results between steps and
models.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

Spacing = Literal["linear", "log"]
Taper = Literal["hann", "hann_periodic"]
StatName = Literal["rms", "peak", "crest", "kurtosis", "mean", "std"]
LOG_FLOOR = 1e-12


def as_rows(window: np.ndarray) -> np.ndarray:
    """A (time, channels) window as contiguous (channels, time) rows."""
    return np.ascontiguousarray(window.T)


def stats_rows(rows: np.ndarray, names: tuple[StatName, ...]) -> np.ndarray:
    """Per-channel statistics of channel-major rows, one row per name in `names` (shape
    (len(names), channels)). Degenerate windows give 0 for crest and kurtosis instead of
    dividing by zero. One temporary the size of the window: a few large temporaries per window
    cost more in the allocator than the arithmetic."""
    n = rows.shape[1]
    mean = rows.mean(axis=1)
    squared = rows - mean[:, None]
    np.multiply(squared, squared, out=squared)
    var = squared.mean(axis=1)
    rms = np.sqrt(np.einsum("ij,ij->i", rows, rows) / n)
    peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
    safe_rms = np.where(rms > 0, rms, 1.0)
    safe_var = np.where(var > 0, var, 1.0)
    table = {
        "rms": lambda: rms,
        "peak": lambda: peak,
        "crest": lambda: np.where(rms > 0, peak / safe_rms, 0.0),
        "kurtosis": lambda: np.where(
            var > 0, np.einsum("ij,ij->i", squared, squared) / n / safe_var**2, 0.0
        ),
        "mean": lambda: mean,
        "std": lambda: np.sqrt(var),
    }
    return np.stack([table[name]() for name in names])


def remove_mean(window: np.ndarray) -> np.ndarray:
    """Each channel minus its mean over the window (sensor DC offset, gravity). Computed on rows
    and returned as their transpose, so the spectral steps after it need no copy."""
    rows = np.array(window.T, order="C")  # a copy of our own, changed in place
    rows -= rows.mean(axis=1, keepdims=True)
    return rows.T


@lru_cache(maxsize=64)
def band_bin_edges(
    n_fft: int, sample_rate_hz: float, f_min: float, f_max: float, n_bands: int, spacing: Spacing
) -> np.ndarray:
    """Integer rfft-bin edges (n_bands + 1) of bands covering [f_min, f_max).

    Edges are rounded up to bins and forced strictly increasing, so every band holds at
    least one bin even where log spacing is finer than the FFT resolution. Cached (read-only):
    every window of a stream asks for the same edges.
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
    bins.flags.writeable = False
    return bins


def band_energies(power: np.ndarray, edges: np.ndarray, log: bool) -> np.ndarray:
    """Sums of channel-major power spectra over the bands `edges`, shape (n_bands, channels)."""
    bands = np.add.reduceat(power[:, : edges[-1]], edges[:-1], axis=1).T
    return np.log10(bands + LOG_FLOOR) if log else bands


@lru_cache(maxsize=16)
def _hann(n: int) -> tuple[np.ndarray, float]:
    """The symmetric Hann taper of length n and the power normalisation (its sum squared)."""
    taper = np.hanning(n)
    taper.flags.writeable = False
    return taper, float(taper.sum() ** 2)


def power_rows(rows: np.ndarray) -> np.ndarray:
    """One-sided power spectrum of each row with a Hann taper, scaled so amplitude does not depend
    on length; shape (channels, n // 2 + 1)."""
    taper, norm = _hann(rows.shape[1])
    return _power(np.fft.rfft(rows * taper, axis=1), norm)


def periodic_hann_power(spectrum: np.ndarray, n: int) -> np.ndarray:
    """`power_rows` with the periodic Hann taper 0.5 - 0.5 cos(2 pi t / n), from the untapered
    rfft of the n-sample rows: in frequency that taper is the kernel [-1/4, 1/2, -1/4], so no
    FFT of its own is needed. Neighbours past either end are mirrored (conjugate symmetry)."""
    tapered = np.empty_like(spectrum)  # first the sum of both neighbours, then in place
    np.add(spectrum[:, :-2], spectrum[:, 2:], out=tapered[:, 1:-1])
    tapered[:, 0] = spectrum[:, 1] + spectrum[:, 1].conj()
    last = spectrum[:, -2] if n % 2 == 0 else spectrum[:, -1]
    tapered[:, -1] = spectrum[:, -2] + last.conj()
    tapered *= -0.5
    tapered += spectrum
    tapered *= 0.5
    return _power(tapered, (n / 2.0) ** 2)


def _power(spectrum: np.ndarray, norm: float) -> np.ndarray:
    power = spectrum.real * spectrum.real
    power += spectrum.imag * spectrum.imag
    power /= norm
    return power


@lru_cache(maxsize=16)
def carrier_bins(n: int, sample_rate_hz: float, carrier_hz: tuple[float, float]) -> slice:
    """The positive-frequency rfft bins of an n-sample window inside [low, high) Hz."""
    freqs = np.fft.fftfreq(n, d=1.0 / sample_rate_hz)[: n // 2 + 1]
    inside = np.flatnonzero((freqs >= carrier_hz[0]) & (freqs < carrier_hz[1]))
    if inside.size == 0:
        return slice(0, 0)
    return slice(int(inside[0]), int(inside[-1]) + 1)


def envelope_rows(
    spectrum: np.ndarray,
    n: int,
    sample_rate_hz: float,
    carrier_hz: tuple[float, float],
    length: int | None = None,
) -> np.ndarray:
    """Amplitude envelope of the band `carrier_hz` from the rows' untapered rfft: `length`
    samples spread over the window (default n, the window's own rate), shape (channels, length).

    The analytic signal of the band is the inverse FFT of its positive bins doubled. Moved down
    to bin 0 (complex demodulation) it changes only by a unit phase factor, so its magnitude is
    the same envelope; and a band of B bins is then fully described by any length >= B, so a
    short inverse FFT gives the envelope at a lower rate (scaled by length / n to keep amplitude).
    """
    length = n if length is None else length
    band = spectrum[:, carrier_bins(n, sample_rate_hz, carrier_hz)]
    return np.abs(np.fft.ifft(band * (2.0 * length / n), n=length, axis=1))


@lru_cache(maxsize=64)
def demodulated_length(
    n: int, sample_rate_hz: float, carrier_hz: tuple[float, float], top_bin: int
) -> int:
    """Envelope samples per window for spectrum bins below `top_bin`, at most n.

    The envelope's square has no content beyond the band's width B (in bins), so with at least
    B + top_bin samples none of it folds back below top_bin (only the square root's faint tails
    do), and 2 * top_bin keeps those bins inside the envelope's own spectrum. Rounded up to a
    length with factors 2, 3 and 5 only, which the FFT handles fastest.
    """
    bins = carrier_bins(n, sample_rate_hz, carrier_hz)
    return min(n, _smooth_length(max(bins.stop - bins.start + top_bin, 2 * top_bin)))


def _smooth_length(minimum: int) -> int:
    """The smallest length >= minimum whose only prime factors are 2, 3 and 5."""
    length = max(minimum, 1)
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def envelope_power_rows(envelope: np.ndarray) -> np.ndarray:
    """Power spectrum of the envelope with its mean removed (the envelope spectrum)."""
    return power_rows(envelope - envelope.mean(axis=1, keepdims=True))
