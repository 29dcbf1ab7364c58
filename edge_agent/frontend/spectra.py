"""One window's spectra computed once, however many feature steps and models ask for them.

Two models on one sensor (a fault classifier and an anomaly detector, say) each take the power
spectrum and the envelope spectrum of the same window. The agent hands every pipeline on a source
one `SpectraCache`; each model's steps ask it for the `WindowSpectra` of their input, and a model
whose input equals the previous model's (same samples, same steps before) gets the products the
first one computed. Values do not depend on who asks first: a product is computed by the same
function from the same array either way, so cached and uncached features are identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_agent.frontend import features


class WindowSpectra:
    """Lazily computed, memoised products of one window (time, channels), held channel-major.
    `window` must not change afterwards: the cache gives it a copy of its own."""

    def __init__(self, window: np.ndarray) -> None:
        self.window = window
        self.n = window.shape[0]
        self.rows = features.as_rows(window)
        self._memo: dict[Any, np.ndarray] = {}

    def spectrum(self) -> np.ndarray:
        """The untapered rfft, (channels, n // 2 + 1)."""
        if "rfft" not in self._memo:
            self._memo["rfft"] = np.fft.rfft(self.rows, axis=1)
        return self._memo["rfft"]

    def power(self, taper: features.Taper) -> np.ndarray:
        """Power spectrum with a Hann taper, (channels, n // 2 + 1); the periodic one is derived
        from the untapered rfft, which an envelope step on the same window needs anyway."""
        key = ("power", taper)
        if key not in self._memo:
            if taper == "hann":
                self._memo[key] = features.power_rows(self.rows)
            else:
                self._memo[key] = features.periodic_hann_power(self.spectrum(), self.n)
        return self._memo[key]

    def envelope_power(
        self, sample_rate_hz: float, carrier_hz: tuple[float, float], length: int
    ) -> np.ndarray:
        """Envelope spectrum of the band `carrier_hz` from an envelope of `length` samples,
        (channels, length // 2 + 1), bins as far apart in Hz as the window's own."""
        key = ("envelope_power", sample_rate_hz, carrier_hz, length)
        if key not in self._memo:
            spectrum = self.spectrum()
            env = features.envelope_rows(spectrum, self.n, sample_rate_hz, carrier_hz, length)
            self._memo[key] = features.envelope_power_rows(env)
        return self._memo[key]

    def stats(self, names: tuple[features.StatName, ...]) -> np.ndarray:
        """Time-domain statistics, (len(names), channels)."""
        return features.stats_rows(self.rows, names)


class SpectraCache:
    """The spectra of recent windows, found again by the window's content.

    Content, not identity: each pipeline cuts its own copy of the window from its own buffer.
    Each entry holds a private copy, so a caller reusing its array cannot make a stale entry
    match. The models on a source are fed one block after another, each taking all the windows
    the block completes, so the cache keeps the windows of the current block (`new_block`):
    the next model on the source finds every one of them, however many the block completes.
    Without blocks (a pipeline used directly) it keeps the latest window only. Within one call
    of a compiled pipeline (`new_call` marks the start) the steps cannot change their input,
    so an array already matched in that call is found again by identity.
    """

    def __init__(self) -> None:
        self._entries: list[WindowSpectra] = []  # the current block's, oldest first
        self._block: object | None = None  # held, so that its identity is not reused
        self._carried = True  # the entries are earlier blocks' (or no block's): one is kept
        self._matched: tuple[int, np.ndarray, WindowSpectra] | None = None  # call, array, entry
        self._call = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Windows whose spectra are held (memory: a few hundred kB each at 3 x 8192)."""
        return len(self._entries)

    def new_block(self, block: object) -> None:
        """A model starts on `block` (the agent hands every model on a source the same object):
        the windows it completes are kept for the other models; those of earlier blocks stay
        until its first new window (a model fed the same samples in another block object still
        finds the latest window)."""
        if block is not self._block:
            self._block = block
            self._carried = True  # until this block's first new window replaces them

    def new_call(self) -> None:
        """A pipeline call begins: arrays matched before may have changed since."""
        self._call += 1

    def of(self, window: np.ndarray) -> WindowSpectra:
        """The spectra of `window`. Outside a compiled pipeline, call `new_call` first whenever
        an array passed before may have changed."""
        matched = self._matched
        if matched is not None and matched[0] == self._call and matched[1] is window:
            self.hits += 1
            return matched[2]
        entry = next((e for e in reversed(self._entries) if _same(e.window, window)), None)
        if entry is not None:
            self.hits += 1
        else:
            self.misses += 1
            entry = WindowSpectra(np.array(window, copy=True))
            if self._carried:
                self._entries, self._carried = [entry], self._block is None
            else:
                self._entries.append(entry)
        self._matched = (self._call, window, entry)
        return entry


def _same(key: np.ndarray, window: np.ndarray) -> bool:
    """Equal arrays; the first sample alone tells most different windows apart."""
    if key.dtype != window.dtype or key.shape != window.shape:
        return False
    return np.array_equal(key[:1], window[:1]) and np.array_equal(key, window)
