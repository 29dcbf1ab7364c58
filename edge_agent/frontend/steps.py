"""The feature pipeline declared as data, so a manifest can carry it and both sides run it.

A pipeline is an ordered list of steps; each maps a 2-D array to a 2-D array, except
`flatten`, which gives 1-D. The first input is one window of shape (time, channels). Spectral
steps take their spectra from a `SpectraCache`: one per compiled pipeline, or one handed to every
pipeline on a source so that models reading the same window share its spectra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import Field, field_validator, model_validator

from edge_agent.frontend import features
from edge_agent.frontend.spectra import SpectraCache
from edge_agent.schema import StrictModel

FloatArray = Union[list[float], list[list[float]]]  # noqa: UP007 - 1-D per channel, 2-D per element


Transform = Callable[[np.ndarray], np.ndarray]


class _StepBase(StrictModel):
    """A step overrides `apply` (a plain function of its input) or `bind` (constants resolved
    once, spectra taken from the cache); each default is defined by the other."""

    def apply(self, x: np.ndarray, sample_rate_hz: float | None) -> np.ndarray:
        return self.bind(sample_rate_hz, SpectraCache())(x)

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        """This step as a function of one array, constants resolved once (the per-window path);
        spectral steps take their spectra from `cache`."""
        return lambda x: self.apply(x, sample_rate_hz)

    def bind_many(self, sample_rate_hz: float | None) -> Transform | None:
        """This step on windows stacked on a leading axis, if it works element by element (then
        each window's values are the same bits as bind() gives); None if it reduces or
        transforms along time, where the order of a batched reduction could change the bits."""
        return None


class Standardize(_StepBase):
    """(x - mean) / std, broadcast against the step's input (per channel or per element)."""

    op: Literal["standardize"] = "standardize"
    mean: FloatArray
    std: FloatArray

    @model_validator(mode="after")
    def _check(self) -> Standardize:
        mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
        if mean.shape != std.shape:
            raise ValueError(f"mean shape {mean.shape} differs from std shape {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("mean must be finite and std finite and > 0")
        return self

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
        return lambda x: (x - mean) / std

    def bind_many(self, sample_rate_hz: float | None) -> Transform:
        mean, std = np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)
        tiled: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

        def run(x: np.ndarray) -> np.ndarray:
            # mean and std spelled out over a whole window, so numpy runs one long inner loop
            # per window instead of one per time step (same operations, same bits)
            shape = x.shape[1:]
            if shape not in tiled:
                tiled[shape] = (
                    np.ascontiguousarray(np.broadcast_to(mean, shape)),
                    np.ascontiguousarray(np.broadcast_to(std, shape)),
                )
            window_mean, window_std = tiled[shape]
            out = x - window_mean
            out /= window_std
            return out

        return run


class RemoveMean(_StepBase):
    """Subtract each channel's mean over the window (sensor DC offset, gravity)."""

    op: Literal["remove_mean"] = "remove_mean"

    def apply(self, x: np.ndarray, sample_rate_hz: float | None) -> np.ndarray:
        return features.remove_mean(x)


class Stats(_StepBase):
    """Time-domain statistics per channel: rows in the order of `names`."""

    op: Literal["stats"] = "stats"
    names: tuple[features.StatName, ...] = (
        "rms",
        "peak",
        "crest",
        "kurtosis",
    )

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        names = self.names
        return lambda x: cache.of(x).stats(names)


class _Bands(_StepBase):
    n_bands: int = Field(ge=1, le=4096)
    f_min: float = Field(ge=0)
    f_max: float = Field(gt=0)
    spacing: features.Spacing = "linear"
    log: bool = True

    @model_validator(mode="after")
    def _check_range(self) -> _Bands:
        if self.f_max <= self.f_min:
            raise ValueError(f"f_max ({self.f_max}) must exceed f_min ({self.f_min})")
        if self.spacing == "log" and self.f_min <= 0:
            raise ValueError("log spacing needs f_min > 0")
        return self

    def _edges(self, n: int, rate: float) -> np.ndarray:
        return features.band_bin_edges(n, rate, self.f_min, self.f_max, self.n_bands, self.spacing)


def _require_rate(sample_rate_hz: float | None, op: str) -> float:
    if sample_rate_hz is None:
        raise ValueError(f"step '{op}' needs input.sample_rate_hz")
    return sample_rate_hz


class SpectrumBands(_Bands):
    """Log band energies of the Hann-windowed power spectrum, shape (n_bands, channels).

    `taper`: "hann" is the symmetric window (numpy.hanning; bundles made before "hann_periodic"
    existed keep it); "hann_periodic" is the periodic one, whose spectrum comes from the
    untapered spectrum an envelope step on the same input computes anyway (one FFT fewer).
    """

    op: Literal["spectrum_bands"] = "spectrum_bands"
    taper: features.Taper = "hann"

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        def run(x: np.ndarray) -> np.ndarray:
            edges = self._edges(x.shape[0], _require_rate(sample_rate_hz, self.op))
            return features.band_energies(cache.of(x).power(self.taper), edges, self.log)

        return run


class EnvelopeBands(_Bands):
    """Band energies of the envelope spectrum of the band `carrier_hz` (bearing defects).

    `method`: "hilbert" takes the analytic signal at the window's full length (bundles made
    before "demodulate" existed keep it); "demodulate" moves the band to 0 Hz and takes the
    envelope at the lowest rate that still resolves the bands (`features.demodulated_length`):
    the same envelope sampled more sparsely, a few times cheaper, slightly different values.
    """

    op: Literal["envelope_bands"] = "envelope_bands"
    carrier_hz: tuple[float, float]
    method: Literal["hilbert", "demodulate"] = "hilbert"

    @field_validator("carrier_hz")
    @classmethod
    def _carrier_ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1]:
            raise ValueError(f"carrier_hz must be [low, high] with 0 < low < high, got {value}")
        return value

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        def run(x: np.ndarray) -> np.ndarray:
            rate, n = _require_rate(sample_rate_hz, self.op), x.shape[0]
            edges = self._edges(n, rate)
            length = self._length(n, rate, int(edges[-1]))
            power = cache.of(x).envelope_power(rate, self.carrier_hz, length)
            return features.band_energies(power, edges, self.log)

        return run

    def _length(self, n: int, rate: float, top_bin: int) -> int:
        if self.method == "hilbert":
            return n
        return features.demodulated_length(n, rate, self.carrier_hz, top_bin)


class Flatten(_StepBase):
    """Row-major flatten to a 1-D feature vector (for dense models)."""

    op: Literal["flatten"] = "flatten"

    def apply(self, x: np.ndarray, sample_rate_hz: float | None) -> np.ndarray:
        return x.reshape(-1)

    def bind_many(self, sample_rate_hz: float | None) -> Transform:
        return lambda x: x.reshape(len(x), -1)


class Concat(_StepBase):
    """Run several branches on the same input and join them.

    `axis="channels"` stacks (rows, c_i) outputs side by side (rows must agree);
    `axis="flat"` flattens each branch and joins the vectors.
    """

    op: Literal["concat"] = "concat"
    axis: Literal["channels", "flat"]
    branches: list[list[Step]] = Field(min_length=1)

    def bind(self, sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
        branches = [_chain(branch, sample_rate_hz, cache) for branch in self.branches]
        return lambda x: self._join([branch(x) for branch in branches])

    def _join(self, outputs: list[np.ndarray]) -> np.ndarray:
        if self.axis == "flat":
            return np.concatenate([out.reshape(-1) for out in outputs])
        rows = {out.shape[0] for out in outputs}
        if len(rows) != 1 or any(out.ndim != 2 for out in outputs):
            shapes = [out.shape for out in outputs]
            raise ValueError(
                f"concat axis='channels' needs 2-D branches with equal rows, got {shapes}"
            )
        return np.concatenate(outputs, axis=1)


Step = Annotated[
    Union[Standardize, RemoveMean, Stats, SpectrumBands, EnvelopeBands, Flatten, Concat],  # noqa: UP007
    Field(discriminator="op"),
]
Concat.model_rebuild()


def compile_steps(
    steps: list[Step], sample_rate_hz: float | None, cache: SpectraCache | None = None
) -> Transform:
    """The steps as one function of a window. `cache`: shared with other pipelines on the same
    source (the agent); without one, the pipeline's own steps still share their spectra."""
    cache = cache if cache is not None else SpectraCache()
    chain = _chain(steps, sample_rate_hz, cache)

    def run(x: np.ndarray) -> np.ndarray:
        cache.new_call()
        return chain(x)

    return run


def _chain(steps: list[Step], sample_rate_hz: float | None, cache: SpectraCache) -> Transform:
    return compile_functions([step.bind(sample_rate_hz, cache) for step in steps])


def compile_functions(functions: list[Transform]) -> Transform:
    def run(x: np.ndarray) -> np.ndarray:
        for function in functions:
            x = function(x)
        return x

    return run


def run_steps(steps: list[Step], x: np.ndarray, sample_rate_hz: float | None) -> np.ndarray:
    return compile_steps(steps, sample_rate_hz)(x)


def as_samples(window: np.ndarray) -> np.ndarray:
    """The one dtype rule for samples entering the front end, in training, `evaluate` and the
    agent alike: rounded to float32 (what training stores and a sensor carries), then computed
    in float64. A CSV's text or a JSON number may hold more digits than float32; without this,
    the agent's features would differ from training's in the last bits."""
    return np.asarray(window, dtype=np.float32).astype(np.float64)


class FeaturePipeline:
    """Turns one window (time, channels) into the float32 model input, identically on both sides."""

    def __init__(
        self, steps: list[Step], sample_rate_hz: float | None, cache: SpectraCache | None = None
    ) -> None:
        self.steps = list(steps)
        self.sample_rate_hz = sample_rate_hz
        self._run = compile_steps(self.steps, sample_rate_hz, cache)
        many = [step.bind_many(sample_rate_hz) for step in self.steps]
        self._run_many = None if None in many else compile_functions(many)  # type: ignore[arg-type]

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return self._run(as_samples(window)).astype(np.float32)

    def batch(self, windows: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Windows stacked on a leading axis -> their model inputs, bit for bit what one window
        at a time gives: in one pass when every step works element by element (a standardised
        window such as C-MAPSS's; ~20x less per-window overhead), else window by window."""
        if self._run_many is None or not len(windows):
            return np.stack([self(w) for w in windows])
        return self._run_many(as_samples(windows)).astype(np.float32)

    def output_shape(self, window: int, n_channels: int) -> tuple[int, ...]:
        """Shape of the features for a window, found by running the steps on zeros."""
        return self(np.zeros((window, n_channels))).shape
