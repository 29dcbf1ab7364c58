"""Per-model streaming windows with the same convention as `frontend.windowing`.

Windows start every `hop` samples after a (re)start; a gap, a sequence break, a sample-rate
change or out-of-order data resets the buffer and is reported, never silently stitched. A gap is
a step above 1.5 sample periods, or above the block's `max_gap_s` when its source sets one (a
replay's `max_gap`: shorter steps are bridged), else above the model's own `max_gap` (the one
training bridged, from the manifest), so a replay windows exactly as training did.

The stream's own clock (the time of the last accepted sample) decides what is in order. One bad
timestamp must not be able to stall it: a jump ahead beyond `jump_tolerance_s()` restarts the
window, and if the next samples are in order again relative to the clock before the jump, the
jumped sample was the outlier and the stream resynchronises to them (`clock_resync`). A clock that
really stepped back (NTP) is believed after `CLOCK_CONFIRM_BLOCKS` blocks that agree with each
other (`clock_step_back`). Either way a bad timestamp costs the window it falls in, not the
data after it.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from edge_agent.stream.blocks import SampleBlock

GAP_TOLERANCE = 0.5  # sample periods a block start may deviate before it counts as a gap
# A forward step of the stream's clock beyond max(MIN_JUMP_S, JUMP_WINDOWS x window duration)
# is a time jump. One minute covers ordinary outages (reconnects, broker restarts), which are
# gaps, not clock faults; two windows keep slow streams (a 1 Hz sensor, a row per flight cycle)
# from calling their normal pace a jump. Rows without a sample rate take the window's duration
# from the median of their recent steps. Smaller jumps are handled too: a rated stream resets on
# any gap and resynchronises like after a jump; in a row stream a sample stamped less than the
# tolerance ahead costs CLOCK_CONFIRM_BLOCKS - 1 rejected rows before the clock steps back.
MIN_JUMP_S = 60.0
JUMP_WINDOWS = 2
# Blocks in order after a jump before it is believed, and blocks in order with each other but
# behind the clock before a step back of the clock is believed.
CLOCK_CONFIRM_BLOCKS = 3
STEP_HISTORY = 32  # recent steps of a row stream whose median is its typical spacing


@dataclass(slots=True)
class Window:
    """One window's samples (read-only) and times. Not frozen: one is built per window (4096 per
    block at C-MAPSS's hop 1), and a frozen dataclass's __init__ costs 0.94 against 0.26 us."""

    values: np.ndarray  # (window, channels) float64, channels in model order
    start: float  # measurement time of the first and last sample
    end: float
    run: int = 0  # restarts of the windower before this window: equal runs are consecutive


@dataclass(frozen=True, slots=True)
class _Regular:
    """The times t0 + k / rate of a rated block's n samples, computed only where they are
    stored, with numpy's own operations: the bits of t0 + np.arange(n) / rate."""

    t0: float
    rate: float
    n: int

    def __getitem__(self, k: int) -> float:
        return self.t0 + (k % self.n) / self.rate

    def write(self, out: np.ndarray, first: int) -> None:
        """The times of samples first, first + 1, ... into `out`."""
        np.divide(_counts(self.n)[first : first + len(out)], self.rate, out=out)
        out += self.t0


@lru_cache(maxsize=8)
def _counts(n: int) -> np.ndarray:
    """0, 1, ... n - 1 (read-only): sample indices as np.arange gives them."""
    counts = np.arange(n)
    counts.flags.writeable = False
    return counts


@dataclass(slots=True)
class _Tally:
    """What happened since the last window (or the start): the material of a diagnosis."""

    samples: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # blocks per reason
    rejected_samples: Counter[str] = field(default_factory=Counter)
    gaps: int = 0  # time gaps and jumps
    largest_gap_s: float = 0.0
    seq_breaks: int = 0
    clock: Counter[str] = field(default_factory=Counter)  # clock_resync, clock_step_back
    run: int = 0  # samples since the last restart
    longest_run: int = 0
    missing: tuple[str, ...] = ()
    other_rate: float = 0.0


class Windower:
    """Cuts windows for one model from one stream; counts every rejected or reset condition."""

    def __init__(
        self,
        channels: list[str],
        window: int,
        hop: int,
        sample_rate_hz: float | None,
        channel_map: dict[str, str] | None = None,
        max_gap_s: float | None = None,
    ) -> None:
        self.channels = list(channels)
        self.source_channels = [(channel_map or {}).get(c, c) for c in channels]
        self.window, self.hop, self.rate = window, hop, sample_rate_hz
        capacity = max(2 * window, window + hop, 4096)  # room for many windows per copy
        # Windows are cut in batches of about 1 MB of window values (views of far fewer bytes).
        self._batch = max(1, (1 << 20) // (window * len(channels) * 8))
        self._buffer = np.empty((capacity, len(channels)), dtype=np.float64)
        self._times = np.empty(capacity, dtype=np.float64)
        self._fill = 0  # samples in the buffer
        self._next_start = 0  # buffer index where the next window starts
        self._last_t: float | None = None  # the stream's clock
        self._last_seq: int | None = None
        # A rated stream breaks on a step above 1.5 periods; a row stream only on a time jump.
        self._gap_s = (1 + GAP_TOLERANCE) / sample_rate_hz if sample_rate_hz else None
        self._steps: deque[float] = deque(maxlen=STEP_HISTORY)  # row streams only
        self._jump_from: float | None = None  # the clock before an unconfirmed jump
        self._confirmed = 0  # in-order blocks since that jump
        self._behind_last: float | None = None  # last sample of the run of blocks behind
        self._behind_blocks = 0
        self._model_max_gap = max_gap_s  # used when a block sets none
        self._max_gap: float | None = None  # the limit in force: the block's, else the model's
        self.counters: Counter[str] = Counter()
        self.samples = 0  # received, including rejected ones
        self.windows = 0
        self.runs = 0  # restarts so far; windows of one run follow each other without a break
        self._tally = _Tally()
        self._column_cache: tuple[tuple[str, ...], list[int]] | None = None

    def reset(self) -> None:
        """Forget the buffer and the clock (the next block starts a fresh stream)."""
        self._restart()
        self._last_t = None
        self._last_seq = None
        self._jump_from = None
        self._behind_last = None
        self._behind_blocks = 0

    def _restart(self) -> None:
        """Drop the unfinished window; the clock stays."""
        self.runs += 1
        if self._viewed():  # the next samples go to the front, where windows look
            self._buffer = np.empty_like(self._buffer)
        self._fill = 0
        self._next_start = 0
        self._tally.run = 0

    def jump_tolerance_s(self) -> float:
        """How far ahead of the clock a sample may be before it is a time jump (see MIN_JUMP_S)."""
        if self.rate:
            period = 1.0 / self.rate
        elif self._steps:
            period = sorted(self._steps)[len(self._steps) // 2]
        else:
            return MIN_JUMP_S
        return max(MIN_JUMP_S, JUMP_WINDOWS * self.window * period)

    def _columns(self, channels: tuple[str, ...]) -> list[int] | None:
        if self._column_cache is not None and self._column_cache[0] == channels:
            return self._column_cache[1]
        try:
            columns = [channels.index(name) for name in self.source_channels]
        except ValueError:
            return None
        self._column_cache = (channels, columns)
        return columns

    def _reject(self, reason: str, n: int) -> list[Window]:
        self.counters[reason] += 1
        self._tally.rejected[reason] += 1
        self._tally.rejected_samples[reason] += n
        return []

    def push(self, block: SampleBlock) -> list[Window]:
        """Add a block; return the windows it completes (possibly none)."""
        n = len(block)
        if n == 0:
            return []
        self.samples += n
        self._tally.samples += n
        columns = self._columns(block.channels)
        if columns is None:
            self._tally.missing = tuple(c for c in self.source_channels if c not in block.channels)
            return self._reject("missing_channels", n)
        rate_given = self.rate is not None and block.rate_hz is not None
        if rate_given and abs(block.rate_hz - self.rate) > 1e-6 * self.rate:  # type: ignore[operator]
            self._tally.other_rate = float(block.rate_hz)  # type: ignore[arg-type]
            return self._reject("sample_rate_mismatch", n)
        times: np.ndarray | _Regular | None = self._regular(block)
        steps = None  # a regular block's steps are known to be in order and below every limit
        if times is None:
            times = self._block_times(block)
            steps = np.diff(times)
            if n > 1 and steps.min() <= 0:
                return self._reject("out_of_order", n)
            if self.rate is None:
                self._steps.extend(steps[-STEP_HISTORY:].tolist())
        self._max_gap = self._model_max_gap if block.max_gap_s is None else block.max_gap_s
        limit = self._gap_s if self._max_gap is None else self._max_gap
        if limit is None:
            # The tolerance is never below MIN_JUMP_S: only a longer step needs its median.
            largest = float(times[-1] - times[0])  # bounds every step inside the block
            if self._last_t is not None:
                largest = max(largest, float(times[0]) - self._last_t)
            limit = self.jump_tolerance_s() if largest > MIN_JUMP_S else MIN_JUMP_S
        if self._last_t is not None:
            step = float(times[0]) - self._last_t
            if step <= 0:
                if block.clock_stepped_back:  # the source knows: believe it at once
                    self._clock_reset("clock_step_back")
                elif not self._accept_behind(times):
                    return self._reject("out_of_order", n)
            else:
                self._behind_last = None  # in-order data ends a run of blocks behind the clock
                if self.rate is None:
                    self._steps.append(step)
                if step > limit:
                    self._time_break(step, self._last_t)
                elif (
                    block.seq is not None
                    and self._last_seq is not None
                    and block.seq != self._last_seq + 1
                ):
                    self.counters["gap_reset"] += 1
                    self._tally.seq_breaks += 1
                    self._restart()
                elif self._jump_from is not None:
                    self._confirmed += 1
                    if self._confirmed >= CLOCK_CONFIRM_BLOCKS:
                        self._jump_from = None
        self._last_t = float(times[-1])
        self._last_seq = block.seq
        values = (
            block.values
            if columns == list(range(len(block.channels)))
            else block.values[:, columns]
        )
        if steps is None or n == 1 or steps.max() <= limit:
            out = self._append(values, times)
        else:
            assert isinstance(times, np.ndarray)
            # A recording with holes: each gap-free stretch is windowed on its own.
            out = []
            start = 0
            for gap in (np.flatnonzero(steps > limit) + 1).tolist():
                out += self._append(values[start:gap], times[start:gap])
                self._time_break(float(steps[gap - 1]), float(times[gap - 1]))
                start = gap
            out += self._append(values[start:], times[start:])
        if out:
            self.windows += len(out)
            self._tally = _Tally()
        return out

    def _time_break(self, step: float, clock_before: float) -> None:
        """A forward step the window must not be stitched across: count it and restart.

        Until CLOCK_CONFIRM_BLOCKS blocks follow in order, a block back between `clock_before`
        and the new clock means the sample that jumped was the outlier (see `_accept_behind`)."""
        # Rows break only on jumps, unless their source set a max_gap.
        jump = step > self.jump_tolerance_s() or (self._gap_s is None and self._max_gap is None)
        self.counters["time_jump_reset" if jump else "gap_reset"] += 1
        self._tally.gaps += 1
        self._tally.largest_gap_s = max(self._tally.largest_gap_s, step)
        self._restart()
        self._jump_from, self._confirmed = clock_before, 0

    def _accept_behind(self, times: np.ndarray) -> bool:
        """A block at or behind the clock: resynchronise, believe a step back, or reject it."""
        first = float(times[0])
        if self._jump_from is not None and first > self._jump_from:
            self._clock_reset("clock_resync")
            return True
        if self._behind_last is not None and first > self._behind_last:
            self._behind_blocks += 1
        else:
            self._behind_blocks = 1
        self._behind_last = float(times[-1])
        if self._behind_blocks >= CLOCK_CONFIRM_BLOCKS:
            self._clock_reset("clock_step_back")
            return True
        return False

    def _clock_reset(self, reason: str) -> None:
        self.counters[reason] += 1
        self._tally.clock[reason] += 1
        self._restart()
        self._jump_from = None
        self._behind_last = None
        self._behind_blocks = 0

    def _regular(self, block: SampleBlock) -> _Regular | None:
        """A rated block's times, unevaluated, when no step inside it can be out of order or a
        gap: a period with room to spare for the rounding of t0 + k / rate either side (one
        ulp of the times and of k / rate, doubled). Otherwise None: every step is checked."""
        rate = block.rate_hz
        if block.timestamps is not None or not rate or self.rate is None:
            return None
        times = _Regular(block.t0, rate, len(block))
        span = (len(block) - 1) / rate
        rounding = 2.0 * float(np.spacing(abs(block.t0) + abs(times[-1])) + np.spacing(span))
        limit = self._model_max_gap if block.max_gap_s is None else block.max_gap_s
        limit = self._gap_s if limit is None else limit
        period = 1.0 / rate
        return times if period - rounding > 0 and period + rounding <= limit else None  # type: ignore[operator]

    def _block_times(self, block: SampleBlock) -> np.ndarray:
        if block.timestamps is not None:
            return block.timestamps
        if block.rate_hz:
            return block.t0 + np.arange(len(block)) / block.rate_hz
        return (
            np.full(len(block), block.t0) if len(block) == 1 else np.arange(len(block)) + block.t0
        )

    def _append(self, values: np.ndarray, times: np.ndarray | _Regular) -> list[Window]:
        out: list[Window] = []
        offset = 0
        n = values.shape[0]
        tally = self._tally
        tally.run += n
        if tally.run > tally.longest_run:
            tally.longest_run = tally.run
        while offset < n:
            room = self._buffer.shape[0] - self._fill
            if room == 0:
                self._compact()
                room = self._buffer.shape[0] - self._fill
            take = min(room, n - offset)
            self._buffer[self._fill : self._fill + take] = values[offset : offset + take]
            if isinstance(times, _Regular):
                times.write(self._times[self._fill : self._fill + take], offset)
            else:
                self._times[self._fill : self._fill + take] = times[offset : offset + take]
            self._fill += take
            offset += take
            starts = range(self._next_start, self._fill - self.window + 1, self.hop)
            for first in range(0, len(starts), self._batch):
                out += self._cut(starts[first : first + self._batch])
            if len(starts):
                self._next_start = starts[-1] + self.hop
        return out

    def _cut(self, starts: range) -> list[Window]:
        """The windows that are complete now, as read-only views of the buffer itself: no copy
        (a copy per window moved `window / hop` times the data, 40x at C-MAPSS's hop 1). The
        buffer is never written where a window still alive looks: appends go past the last
        window, and a compaction or restart while windows are alive moves to a fresh buffer,
        leaving the old one to them (the agent's windows are gone by then: no allocation)."""
        buffer = self._buffer
        rows, cols = buffer.strides
        views = np.ndarray(
            (len(starts), self.window, buffer.shape[1]),
            buffer.dtype,
            buffer=buffer,
            offset=starts.start * rows,
            strides=(rows * self.hop, rows, cols),
        )
        views.flags.writeable = False
        first = self._times[starts.start : starts.stop : self.hop].tolist()
        last = self._times[starts.start + self.window - 1 :: self.hop][: len(starts)].tolist()
        run = self.runs
        return [Window(values, start, end, run) for values, start, end in zip(views, first, last)]

    def _compact(self) -> None:
        """Move the unfinished tail to the front so the buffer never grows (to a fresh buffer
        while windows view this one)."""
        keep_from = min(self._next_start, self._fill)
        kept = self._fill - keep_from
        target = np.empty_like(self._buffer) if self._viewed() else self._buffer
        target[:kept] = self._buffer[keep_from : self._fill]
        self._buffer = target
        self._times[:kept] = self._times[keep_from : self._fill]
        self._fill = kept
        self._next_start -= keep_from

    def _viewed(self) -> bool:
        """Whether a window handed out still looks at the buffer: each window's values hold a
        reference to it (numpy's views keep the array that owns the memory as their base)."""
        return sys.getrefcount(self._buffer) > 2  # the attribute and this call's argument

    # ---- why no window forms -----------------------------------------------------------------
    def stalled(self) -> bool:
        """More than window + hop samples since the last window (or the start) and none formed:
        a clean stream forms one within `window` samples, so something is in the way."""
        return self._tally.samples > self.window + self.hop

    def stall_kind(self) -> str:
        """The main reason no window formed lately, as a short key (for 'has it changed')."""
        return self._kinds()[0]

    def diagnosis(self) -> str:
        """One line: why no window formed from the samples since the last window (or the start)."""
        since = "the last " if self.windows else ""
        reasons = "; ".join(self._text(kind) for kind in self._kinds())
        return f"no window formed from {since}{self._tally.samples} samples: {reasons}"

    def _kinds(self) -> list[str]:
        """The reasons present since the last window, the one that cost the most samples first."""
        tally = self._tally
        lost = tally.rejected_samples
        weighted = [(lost[kind], kind) for kind in _REJECTS if tally.rejected[kind]]
        if tally.gaps or tally.seq_breaks or tally.clock:
            weighted.append((tally.samples - sum(lost.values()), "discontinuities"))
        weighted.sort(key=lambda item: -item[0])  # stable: ties keep _REJECTS order
        return [kind for _, kind in weighted] or ["too_few"]

    def _text(self, kind: str) -> str:
        tally = self._tally
        if kind == "too_few":
            return f"fewer samples than one window ({self.window}) arrived"
        if kind != "discontinuities":
            counted = _blocks(tally.rejected[kind], tally.rejected_samples[kind])
            if kind == "missing_channels":
                return f"{counted} lack channel(s) {', '.join(tally.missing)}"
            if kind == "sample_rate_mismatch":
                return f"{counted} at {tally.other_rate:g} Hz, the model needs {self.rate:g} Hz"
            return f"{counted} out of order (time going backwards)"
        parts = []
        if tally.gaps:
            if self._max_gap is not None:
                what = f"time gaps above max_gap {_seconds(self._max_gap)}"
            elif self.rate:
                what = f"time gaps above {1 + GAP_TOLERANCE:g} sample periods"
            else:
                what = f"time jumps above {_seconds(self.jump_tolerance_s())}"
            largest = _seconds(tally.largest_gap_s)
            parts.append(f"{what} in {_places(tally.gaps)}; largest {largest}")
        if tally.seq_breaks:
            parts.append(f"sequence number breaks in {_places(tally.seq_breaks)}")
        if tally.clock["clock_resync"]:
            parts.append(
                f"clock resynchronised after a jump ahead in {_places(tally.clock['clock_resync'])}"
            )
        if tally.clock["clock_step_back"]:
            parts.append(f"clock stepped back in {_places(tally.clock['clock_step_back'])}")
        parts.append(
            f"longest unbroken stretch {_count(tally.longest_run, 'sample')} "
            f"(a window needs {self.window})"
        )
        return "; ".join(parts)


_REJECTS = ("missing_channels", "sample_rate_mismatch", "out_of_order")


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _blocks(blocks: int, samples: int) -> str:
    return f"{_count(blocks, 'block')} ({_count(samples, 'sample')})"


def _places(count: int) -> str:
    return _count(count, "place")


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.3g} s"
    return f"{value * 1000:.3g} ms"
