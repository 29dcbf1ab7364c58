"""Seeded synthetic vibration of a rotating machine: 3-axis accelerometer, units of g.

The simulator is a streaming process. Every piece of state (shaft phase, speed wander, ringing
tails of bearing impacts, random streams) carries across blocks, so a stream cut into blocks is
bit-identical to one long block, and the training pipeline and the device's built-in simulator
see the same signal for the same seed. Numpy only: this runs on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FAULTS: tuple[str, ...] = (
    "healthy",
    "imbalance",
    "misalignment",
    "looseness",
    "bearing_outer",
    "bearing_inner",
    "bearing_ball",
)
CHANNELS: tuple[str, ...] = ("ax", "ay", "az")

# Shaft orders with phase-locked energy, in half orders (0.5x..3x, then 4x..10x); the
# half-integer ones only appear with looseness.
_HALF_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20)
_ORDERS = np.array(_HALF_STEPS) / 2
_ROW = {order: k for k, order in enumerate(_ORDERS.tolist())}
_HEALTHY_G = {1.0: 0.03, 2.0: 0.012, 3.0: 0.006, 4.0: 0.004}  # residual imbalance, fits, gears
_KNOT_S = 0.05  # speed wander is interpolated between knots: smooth at every shaft order
_WANDER_TAU_S = 2.0  # correlation time of the speed wander
_SLIP_AT_FULL_LOAD = 0.01  # induction-motor slip: running speed sags a little under load
_JITTER = 0.015  # random slip of rolling elements, as a fraction of the impact period
_IMPACT_G = 1.2  # peak ringing of a full-severity bearing impact at full load
_BACKGROUND_RATE_HZ = 8.0  # weak random impacts (grit, lubricant) that every machine has
_BACKGROUND_G = 0.04
_RING_DECAYS = 7.0  # kernel length in decay constants: exp(-7) < 0.1 %


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:  # also rejects NaN
        raise ValueError(f"{name} must be within [{lo:g}, {hi:g}], got {value!r}")


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing geometry; the defaults resemble an SKF 6205 deep-groove bearing."""

    n_balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        _check_range("n_balls", self.n_balls, 3, 100)
        _check_range("ball_diameter_mm", self.ball_diameter_mm, 1e-3, self.pitch_diameter_mm / 2)
        _check_range("contact_angle_deg", self.contact_angle_deg, 0.0, 60.0)

    def defect_orders(self) -> dict[str, float]:
        """Defect frequencies as multiples of shaft speed, so they follow any speed change."""
        ratio = self.ball_diameter_mm / self.pitch_diameter_mm
        r = ratio * math.cos(math.radians(self.contact_angle_deg))
        return {
            "bpfo": self.n_balls / 2 * (1 - r),
            "bpfi": self.n_balls / 2 * (1 + r),
            "bsf": (1 - r * r) / (2 * ratio),
            "ftf": (1 - r) / 2,
        }


@dataclass(frozen=True)
class MachineConditions:
    """Operating state of the simulated machine; validated so a bad config fails at load time."""

    fault: str = "healthy"  # one of FAULTS
    severity: float = 1.0  # 0..1 scale of the fault signature (0: healthy signature only)
    shaft_hz: float = 30.0  # nominal running speed; load slip lowers it slightly
    speed_variation: float = 0.01  # relative RMS of the slow random speed wander
    load: float = 0.7  # 0..1, scales all amplitudes
    noise_g: float = 0.02  # white sensor noise RMS
    resonance_hz: float = 3500.0  # structural resonance rung by impacts
    degradation_per_s: float = 0.0  # severity growth per second, capped at 1
    bearing: BearingGeometry = BearingGeometry()

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of: {', '.join(FAULTS)}")
        _check_range("severity", self.severity, 0.0, 1.0)
        _check_range("shaft_hz", self.shaft_hz, 0.1, 1000.0)
        # Bounded so that even a 6-sigma wander keeps the shaft turning forwards.
        _check_range("speed_variation", self.speed_variation, 0.0, 0.1)
        _check_range("load", self.load, 0.0, 1.0)
        _check_range("noise_g", self.noise_g, 0.0, 10.0)
        _check_range("resonance_hz", self.resonance_hz, 1.0, 1e6)
        _check_range("degradation_per_s", self.degradation_per_s, 0.0, 1.0)


class _Ringing:
    """Sums resonance responses of impacts; the part past the block end waits for the next block.

    Impacts are added in the order they occur and the carried tail is the running sum itself, so
    every sample sees the same additions in the same order however the stream is cut.
    """

    def __init__(self) -> None:
        self._tail = np.zeros((0, 3))

    def render(
        self, n: int, onsets: np.ndarray, amps: np.ndarray, kernel: np.ndarray
    ) -> np.ndarray:
        reach = int(onsets.max()) + len(kernel) if onsets.size else 0
        buf = np.zeros((max(n, len(self._tail), reach), 3))
        buf[: len(self._tail)] = self._tail
        for start, amp in zip(onsets.tolist(), amps.tolist(), strict=True):
            buf[start : start + len(kernel)] += amp * kernel
        self._tail = buf[n:].copy()
        return buf[:n]


class VibrationSimulator:
    """Streaming generator: consecutive `next_block` calls continue one physical signal."""

    def __init__(
        self, conditions: MachineConditions, sample_rate_hz: float = 25600.0, seed: int = 0
    ) -> None:
        _check_range("sample_rate_hz", sample_rate_hz, 100.0, 1e7)
        self._fs = float(sample_rate_hz)
        # One stream per random process: each is consumed in event order, so the output does not
        # depend on block boundaries (a shared stream would interleave draws differently).
        machine, self._speed_rng, self._noise_rng, self._slip_rng, self._bg_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
        )
        # The machine's own "personality", fixed for its lifetime so that switching back to
        # healthy restores the same healthy signature.
        shape = (len(_ORDERS), 3)
        radial = np.array([_HEALTHY_G.get(order, 0.0) for order in _ORDERS.tolist()])
        self._healthy_amp = np.outer(radial, [1.0, 1.0, 0.3]) * machine.uniform(0.6, 1.4, shape)
        self._healthy_phase = machine.uniform(0, 2 * np.pi, shape)
        self._fault_phase = machine.uniform(0, 2 * np.pi, shape)
        self._impact_axes = machine.uniform([0.8, 0.5, 0.2], [1.0, 0.9, 0.45])
        self._decay_s = machine.uniform(0.5e-3, 1.5e-3)
        self._zone_phase = machine.uniform(0, 2 * np.pi)

        self._knot_len = max(1, round(_KNOT_S * self._fs))
        self._knot_base = 0
        self._knots = self._speed_rng.standard_normal(1)
        self._next_bg = self._bg_rng.exponential(self._fs / _BACKGROUND_RATE_HZ)
        self._fault_ring, self._bg_ring = _Ringing(), _Ringing()
        self._n = 0
        self._theta = 0.0  # shaft angle in revolutions, unwrapped
        self.set_conditions(conditions)

    @property
    def conditions(self) -> MachineConditions:
        """The conditions in force, so a caller can derive a modified copy to switch to."""
        return self._cond

    @property
    def samples_emitted(self) -> int:
        """Samples produced so far: the stream's clock, used to time-stamp blocks."""
        return self._n

    def set_conditions(self, conditions: MachineConditions) -> None:
        """Switch fault or speed between blocks; phase, speed wander and ringing carry on.

        Degradation is counted from this call, starting at ``conditions.severity``.
        """
        if max(conditions.resonance_hz, 10 * conditions.shaft_hz) > 0.45 * self._fs:
            raise ValueError(
                f"resonance_hz ({conditions.resonance_hz:g}) and 10 x shaft_hz "
                f"({10 * conditions.shaft_hz:g}) must stay below 0.45 x sample rate "
                f"({0.45 * self._fs:g} Hz) to avoid aliasing"
            )
        self._cond = conditions
        self._cond_start = self._n
        self._gain = 0.4 + 0.6 * conditions.load
        self._f_run = conditions.shaft_hz * (1 - _SLIP_AT_FULL_LOAD * conditions.load)
        amp, phase, clip = _fault_harmonics(conditions, self._fault_phase)
        amp = np.concatenate((self._healthy_amp, amp), axis=1)
        phase = np.concatenate((self._healthy_phase, phase), axis=1)
        # (sin | cos, order, healthy axes + fault axes): one accumulation serves both parts.
        self._weights = self._gain * np.stack((amp * np.cos(phase), amp * np.sin(phase)))
        self._active = {_HALF_STEPS[k]: k for k in np.flatnonzero(amp.any(axis=1)).tolist()}
        self._clip = None if clip is None else self._gain * clip

        t = np.arange(math.ceil(_RING_DECAYS * self._decay_s * self._fs)) / self._fs
        ring = np.exp(-t / self._decay_s) * np.sin(2 * np.pi * conditions.resonance_hz * t)
        self._kernel = np.outer(ring, self._impact_axes)

        orders = conditions.bearing.defect_orders()
        impact, mod_order, depth = {
            "bearing_outer": (orders["bpfo"], 0.0, 0.0),
            "bearing_inner": (orders["bpfi"], 1.0, 0.8),  # defect passes the load zone once a rev
            "bearing_ball": (2 * orders["bsf"], orders["ftf"], 0.8),  # ball travels with the cage
        }.get(conditions.fault, (0.0, 0.0, 0.0))
        self._impact_order, self._mod_order, self._mod_depth = impact, mod_order, depth
        self._impact_count = math.floor(impact * self._theta)

    def next_block(self, n_samples: int) -> np.ndarray:
        """Return the next ``(n_samples, 3)`` float32 samples of ax, ay, az in g."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        n, c = int(n_samples), self._cond
        idx = np.arange(self._n, self._n + n, dtype=np.int64)
        freq = self._f_run * (1.0 + c.speed_variation * self._wander(idx))
        # Sequential cumsum starting from the carried angle: same rounding as one long block.
        theta = np.cumsum(np.concatenate(([self._theta], freq / self._fs)))[1:]
        elapsed = (idx - self._cond_start) / self._fs
        severity = np.minimum(1.0, c.severity + c.degradation_per_s * elapsed)

        base, fault = self._harmonics(theta)
        if self._clip is not None:  # looseness: the loose part hits a stop on one side
            np.minimum(fault[1], self._clip, out=fault[1])
        out = base + severity * fault
        # Noise is drawn sample-major, so its stream does not depend on the block length.
        out += c.noise_g * self._noise_rng.standard_normal((n, 3)).T
        out += self._fault_impacts(theta, freq, severity).T
        out += self._background_impacts(n).T
        if n:
            self._theta = float(theta[-1])
        self._n += n
        return np.ascontiguousarray(out.T, dtype=np.float32)

    def _wander(self, idx: np.ndarray) -> np.ndarray:
        """Unit-variance slow speed wander: an Ornstein-Uhlenbeck walk, linear between knots."""
        if not idx.size:
            return np.zeros(0)
        knot, offset = np.divmod(idx, self._knot_len)
        missing = int(knot[-1]) + 2 - self._knot_base - len(self._knots)
        if missing > 0:
            rho = math.exp(-self._knot_len / self._fs / _WANDER_TAU_S)
            steps = math.sqrt(1 - rho * rho) * self._speed_rng.standard_normal(missing)
            walk, w = np.empty(missing), float(self._knots[-1])
            for i, step in enumerate(steps.tolist()):
                w = rho * w + step
                walk[i] = w
            self._knots = np.concatenate((self._knots, walk))
        j = knot - self._knot_base
        w0, w1 = self._knots[j], self._knots[j + 1]
        wander = w0 + (w1 - w0) * (offset / self._knot_len)
        keep_from = (int(idx[-1]) + 1) // self._knot_len
        self._knots = self._knots[keep_from - self._knot_base :]
        self._knot_base = keep_from
        return wander

    def _harmonics(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Phase-locked shaft orders as (3, n), split into the healthy part and the fault part.

        Every order is a multiple of 0.5, so powers of one complex phasor replace a sin/cos pair
        per order, and products go to a reused buffer: trigonometry and fresh temporaries would
        otherwise dominate the cost.
        """
        acc, term = np.zeros((6, len(theta))), np.empty((6, len(theta)))
        half_turn = np.exp(1j * np.pi * theta)
        phasor = np.ones_like(half_turn)
        for step in range(1, max(self._active, default=0) + 1):
            phasor *= half_turn
            k = self._active.get(step)
            if k is not None:
                # A sin(x + p) = A cos(p) sin(x) + A sin(p) cos(x)
                for weights, wave in zip(
                    self._weights[:, k], (phasor.imag, phasor.real), strict=True
                ):
                    np.multiply(weights[:, None], wave, out=term)
                    acc += term
        return acc[:3], acc[3:]

    def _fault_impacts(self, theta: np.ndarray, freq: np.ndarray, sev: np.ndarray) -> np.ndarray:
        """Bearing impacts each time the defect angle completes a turn, ringing the structure."""
        onsets, amps = np.zeros(0, dtype=np.int64), np.zeros(0)
        if self._impact_order and theta.size:
            counts = np.floor(self._impact_order * theta)
            hits = np.flatnonzero(np.diff(counts, prepend=self._impact_count) > 0)
            self._impact_count = int(counts[-1])
            # Slip only delays (never advances) an impact, so it never lands in a past block.
            period = self._fs / (self._impact_order * freq[hits])
            delay = self._slip_rng.uniform(0.0, 2 * _JITTER, hits.size) * period
            onsets = hits + np.rint(delay).astype(np.int64)
            angle = 2 * np.pi * self._mod_order * theta[hits] + self._zone_phase
            modulation = 1 - self._mod_depth * 0.5 * (1 - np.cos(angle))
            amps = _IMPACT_G * self._gain * sev[hits] * modulation
        return self._fault_ring.render(len(theta), onsets, amps, self._kernel)

    def _background_impacts(self, n: int) -> np.ndarray:
        """Weak Poisson impacts present on any machine, so healthy data is not too clean."""
        onsets, amps = [], []
        while self._next_bg < self._n + n:
            onsets.append(math.floor(self._next_bg) - self._n)
            amps.append(self._gain * self._bg_rng.exponential(_BACKGROUND_G))
            self._next_bg += self._bg_rng.exponential(self._fs / _BACKGROUND_RATE_HZ)
        onset_array = np.array(onsets, dtype=np.int64)
        return self._bg_ring.render(n, onset_array, np.array(amps), self._kernel)


def _fault_harmonics(
    c: MachineConditions, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Amplitude (g), phase and optional clip level of the fault's phase-locked orders."""
    amp, phase = np.zeros((len(_ORDERS), 3)), phase.copy()
    if c.fault == "imbalance":
        # A rotating force: ax and ay in quadrature, growing with speed squared.
        a = 0.5 * min((c.shaft_hz / 30.0) ** 2, 4.0)
        amp[_ROW[1.0]] = (a, a, 0.1 * a)
        phase[_ROW[1.0], 1] = phase[_ROW[1.0], 0] + np.pi / 2
    elif c.fault == "misalignment":  # the coupling bends the shaft twice a turn, and axially
        amp[_ROW[1.0]], amp[_ROW[2.0]] = (0.15, 0.15, 0.25), (0.3, 0.3, 0.45)
        amp[_ROW[3.0]] = (0.08, 0.08, 0.12)
    elif c.fault == "looseness":  # a rattling foot: rich harmonics, mostly on ay
        ay = np.where(np.array(_HALF_STEPS) % 2 == 0, 0.18 / np.sqrt(_ORDERS), 0.08)
        amp[:] = np.outer(ay, (0.25, 1.0, 0.1))
        return amp, phase, 0.35 * float(ay.sum())
    return amp, phase, None


def generate(
    conditions: MachineConditions, n_samples: int, sample_rate_hz: float = 25600.0, seed: int = 0
) -> np.ndarray:
    """One-shot ``(n_samples, 3)`` float32 recording; identical to streaming the same seed."""
    return VibrationSimulator(conditions, sample_rate_hz, seed).next_block(n_samples)


def random_conditions(
    rng: np.random.Generator, fault: str, shaft_hz_range: tuple[float, float] = (15.0, 50.0)
) -> MachineConditions:
    """Draw varied operating conditions so a dataset does not tie a class to one machine state.

    Every fault consumes the same draws, so a dataset's other classes do not shift when one
    class is added or removed.
    """
    lo, hi = shaft_hz_range
    if not 0 < lo <= hi:
        raise ValueError(f"shaft_hz_range must satisfy 0 < low <= high, got {shaft_hz_range}")
    severity = float(rng.uniform(0.5, 1.0))
    return MachineConditions(
        fault=fault,
        severity=0.0 if fault == "healthy" else severity,
        shaft_hz=float(rng.uniform(lo, hi)),
        speed_variation=float(rng.uniform(0.002, 0.02)),
        load=float(rng.uniform(0.3, 1.0)),
        noise_g=float(rng.uniform(0.005, 0.05)),
        resonance_hz=float(rng.uniform(2500.0, 5000.0)),
    )
