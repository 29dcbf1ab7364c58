"""Per-stream baseline: each channel standardised by its own mean and std over the first
`samples` samples of the stream, before the feature steps.

For machines that differ in level (one pump runs warmer than another) a model trained on a few
machines then sees deviations from each machine's own start rather than from the training
fleet's level. Training fits it per recording file (each file is a stream) and the agent per
stream with the same functions; windows that end before the baseline is complete are not
scored on either side. The agent fits it afresh at each start (nothing is persisted): a restart
re-learns the level from the samples that follow it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from edge_agent.frontend.steps import as_samples
from edge_agent.schema import StrictModel
from edge_agent.stream.blocks import SampleBlock


class BaselineSpec(StrictModel):
    """Manifest `input.baseline`: how each stream's own level is removed."""

    samples: int = Field(
        ge=2, description="Samples at the start of each stream the mean and std are fitted on."
    )
    min_std: float = Field(
        default=1e-6, gt=0, description="Floor of the fitted std (a flat channel at start)."
    )


Fitted = tuple[np.ndarray, np.ndarray]  # per-channel mean and std, float64


def fit_baseline(spec: BaselineSpec, rows: np.ndarray) -> Fitted:
    """Mean and std per channel of the first `spec.samples` rows (the dtype rule applies)."""
    head = np.ascontiguousarray(as_samples(rows[: spec.samples]))
    if head.shape[0] < spec.samples:
        raise ValueError(f"the baseline needs {spec.samples} samples, got {head.shape[0]}")
    return head.mean(axis=0), np.maximum(head.std(axis=0), spec.min_std)


def apply_baseline(fitted: Fitted, window: np.ndarray) -> np.ndarray:
    """A (time, channels) window, or windows stacked on a leading axis, standardised by its
    stream's baseline, float64 (element by element: a stacked window gets the same bits)."""
    mean, std = fitted
    return (as_samples(window) - mean) / std


class StreamBaseline:
    """The agent's baseline of one stream: collects the first samples, then standardises.

    `take` splits each block at the sample that completes the baseline, so the caller can tell
    windows ending inside the baseline period (not scored) from those after it, exactly as
    training drops windows whose last row comes before the `samples`-th."""

    def __init__(self, spec: BaselineSpec, source_channels: list[str]) -> None:
        self.spec = spec
        self.source_channels = list(source_channels)
        self._parts: list[np.ndarray] = []
        self.collected = 0
        self.fitted: Fitted | None = None
        self.unscored = 0  # windows that ended before the baseline was complete

    def take(self, block: SampleBlock) -> tuple[SampleBlock | None, SampleBlock | None]:
        """(samples that went into the baseline, the rest) of a block; either may be None.

        A block lacking the model's channels adds nothing (the windower rejects it)."""
        if self.fitted is not None or len(block) == 0:
            return None, block
        try:
            columns = [block.channels.index(name) for name in self.source_channels]
        except ValueError:
            return None, block
        k = min(len(block), self.spec.samples - self.collected)
        self._parts.append(np.asarray(block.values[:k, columns], dtype=np.float64))
        self.collected += k
        if self.collected == self.spec.samples:
            self.fitted = fit_baseline(self.spec, np.concatenate(self._parts))
            self._parts = []
        if k == len(block):
            return block, None
        return _split(block, k)

    def apply(self, window: np.ndarray) -> np.ndarray:
        assert self.fitted is not None
        return apply_baseline(self.fitted, window)

    def progress(self) -> str:
        return (
            f"baseline incomplete: {self.collected} of {self.spec.samples} samples collected; "
            f"{self.unscored} windows before it were not scored"
        )


def _split(block: SampleBlock, k: int) -> tuple[SampleBlock, SampleBlock]:
    """The first k samples and the rest, each with its own timing. The rest carries no sequence
    number (it continues the same message, so no sequence check applies to it)."""
    if block.timestamps is not None:
        tail_t0, times = float(block.timestamps[k]), (block.timestamps[:k], block.timestamps[k:])
    else:
        tail_t0 = block.t0 + (k / block.rate_hz if block.rate_hz else k)
        times = (None, None)
    head = replace(block, values=block.values[:k], timestamps=times[0])
    tail = replace(
        block,
        values=block.values[k:],
        timestamps=times[1],
        t0=tail_t0,
        seq=None,
        clock_stepped_back=False,
    )
    return head, tail
