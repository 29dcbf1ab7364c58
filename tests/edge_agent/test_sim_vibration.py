"""Tests for the synthetic vibration simulator: determinism, streaming, and fault physics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_agent.sim.vibration import (
    CHANNELS,
    FAULTS,
    BearingGeometry,
    MachineConditions,
    VibrationSimulator,
    generate,
    random_conditions,
)

FS = 25600.0
N = 51200  # 2 s: 0.5 Hz resolution, enough to resolve +-1x sidebands around defect lines
# No load means no motor slip, and little wander: the running speed is then shaft_hz itself.
STEADY = {"shaft_hz": 30.0, "load": 0.0, "speed_variation": 0.002}


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed amplitude spectrum of one channel."""
    window = np.hanning(len(x))
    return np.fft.rfftfreq(len(x), 1 / FS), np.abs(np.fft.rfft(x * window)) / window.sum() * 2


def _envelope_spectrum(x: np.ndarray, center_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Bandpass around the resonance, take |analytic signal|, then its spectrum (FFT only)."""
    freqs = np.fft.fftfreq(len(x), 1 / FS)
    band = np.abs(np.abs(freqs) - center_hz) < 1000.0
    analytic = np.fft.fft(x) * band * (freqs > 0) * 2
    envelope = np.abs(np.fft.ifft(analytic))
    return _spectrum(envelope - envelope.mean())


def _peak_hz(freqs: np.ndarray, mag: np.ndarray, lo: float, hi: float) -> float:
    """Frequency of the largest spectral line within [lo, hi]."""
    sel = (freqs >= lo) & (freqs <= hi)
    return float(freqs[sel][np.argmax(mag[sel])])


def _line(freqs: np.ndarray, mag: np.ndarray, hz: float, bins: int = 2) -> float:
    """Largest magnitude within a couple of bins of `hz` (speed wander smears lines slightly)."""
    k = round(hz / (freqs[1] - freqs[0]))
    return float(mag[k - bins : k + bins + 1].max())


def _floor(freqs: np.ndarray, mag: np.ndarray, lo: float, hi: float) -> float:
    """Median magnitude in a band: the noise floor a real line must stand out from."""
    return float(np.median(mag[(freqs >= lo) & (freqs <= hi)]))


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=0))


def test_same_seed_gives_identical_output() -> None:
    """Test that the same seed reproduces the same samples exactly."""
    cond = MachineConditions(fault="bearing_inner")
    np.testing.assert_array_equal(generate(cond, 5000, seed=3), generate(cond, 5000, seed=3))


def test_different_seed_gives_different_output() -> None:
    """Test that different seeds give different machines and noise."""
    cond = MachineConditions(fault="bearing_inner")
    assert not np.array_equal(generate(cond, 5000, seed=3), generate(cond, 5000, seed=4))


@pytest.mark.parametrize("fault", FAULTS)
def test_blockwise_stream_equals_one_shot(fault: str) -> None:
    """Test that streaming in uneven blocks is bit-identical to one long block."""
    cond = MachineConditions(fault=fault, degradation_per_s=0.3, severity=0.6)
    sim = VibrationSimulator(cond, seed=7)
    sizes = [0, 1, 255, 4096, 17, 3000, 1031, 6000]
    blocks = np.concatenate([sim.next_block(n) for n in sizes])
    np.testing.assert_array_equal(blocks, generate(cond, sum(sizes), seed=7))
    assert sim.samples_emitted == sum(sizes)


def test_blockwise_equals_one_shot_across_set_conditions() -> None:
    """Test that a fault switch at a block boundary is independent of how blocks are cut."""
    first = MachineConditions(fault="bearing_outer", shaft_hz=25.0)
    second = MachineConditions(fault="bearing_inner", shaft_hz=35.0, resonance_hz=4200.0)

    def run(before: list[int], after: list[int]) -> np.ndarray:
        sim = VibrationSimulator(first, seed=11)
        parts = [sim.next_block(n) for n in before]
        sim.set_conditions(second)
        assert sim.conditions == second
        return np.concatenate(parts + [sim.next_block(n) for n in after])

    reference = run([12000], [20000])
    np.testing.assert_array_equal(run([5000, 1, 6999], [7, 9993, 10000]), reference)


def test_set_conditions_keeps_the_phase_continuous() -> None:
    """Test that a speed change mid-stream does not jump the waveform."""
    quiet = {"noise_g": 0.0, "speed_variation": 0.0}
    sim = VibrationSimulator(MachineConditions(fault="imbalance", **quiet), seed=2)
    before = sim.next_block(10000)
    sim.set_conditions(MachineConditions(fault="imbalance", shaft_hz=31.0, **quiet))
    after = sim.next_block(10)
    typical_step = np.abs(np.diff(before[:, 0])).max()
    assert abs(after[0, 0] - before[-1, 0]) <= 1.5 * typical_step


def test_default_bearing_defect_orders() -> None:
    """Test that the 6205-like defaults give the textbook defect orders."""
    orders = BearingGeometry().defect_orders()
    assert orders["bpfo"] == pytest.approx(3.585, abs=1e-3)
    assert orders["bpfi"] == pytest.approx(5.415, abs=1e-3)
    assert orders["bsf"] == pytest.approx(2.357, abs=1e-3)
    assert orders["ftf"] == pytest.approx(0.398, abs=1e-3)


@pytest.mark.parametrize("fault", FAULTS)
def test_output_is_float32_finite_and_shaped(fault: str) -> None:
    """Test that every fault yields finite float32 samples shaped (n, 3)."""
    x = generate(MachineConditions(fault=fault), 3000, seed=1)
    assert x.dtype == np.float32
    assert x.shape == (3000, len(CHANNELS))
    assert np.all(np.isfinite(x))


def test_imbalance_peaks_at_running_speed_in_quadrature() -> None:
    """Test that imbalance puts the dominant radial line at 1x, with ax and ay 90 degrees apart."""
    x = generate(MachineConditions(fault="imbalance", **STEADY), N, seed=5)
    freqs, mag = _spectrum(x[:, 0])
    assert abs(_peak_hz(freqs, mag, 5.0, 2000.0) - 30.0) <= 2 * freqs[1]
    k = int(np.argmax(mag * (freqs < 100)))
    cross = np.fft.rfft(x[:, 0])[k] * np.conj(np.fft.rfft(x[:, 1])[k])
    assert abs(abs(np.angle(cross)) - np.pi / 2) < 0.2
    assert _rms(x)[2] < 0.3 * _rms(x)[0]


def test_misalignment_has_strong_2x_and_axial_energy() -> None:
    """Test that misalignment shows a 2x line above 1x and far more axial energy than healthy."""
    cond = MachineConditions(fault="misalignment", **STEADY)
    x = generate(cond, N, seed=5)
    healthy = generate(dataclasses.replace(cond, fault="healthy"), N, seed=5)
    for axis in range(3):
        freqs, mag = _spectrum(x[:, axis])
        assert _line(freqs, mag, 60.0) > _line(freqs, mag, 30.0)
    assert _rms(x)[2] > 5 * _rms(healthy)[2]


@pytest.mark.parametrize(
    ("fault", "key", "factor"), [("bearing_outer", "bpfo", 1.0), ("bearing_ball", "bsf", 2.0)]
)
def test_bearing_envelope_peaks_at_defect_frequency(fault: str, key: str, factor: float) -> None:
    """Test that the envelope spectrum around the resonance peaks at the defect frequency."""
    cond = MachineConditions(fault=fault, resonance_hz=4000.0, **STEADY)
    x = generate(cond, N, seed=9)
    freqs, mag = _envelope_spectrum(x[:, 0], cond.resonance_hz)
    expected = factor * cond.bearing.defect_orders()[key] * cond.shaft_hz
    assert abs(_peak_hz(freqs, mag, 20.0, 400.0) - expected) <= 2 * freqs[1]


def test_inner_race_envelope_has_bpfi_with_shaft_sidebands() -> None:
    """Test that the inner-race envelope peaks at BPFI with sidebands at +-1x."""
    cond = MachineConditions(fault="bearing_inner", resonance_hz=3000.0, **STEADY)
    x = generate(cond, N, seed=9)
    freqs, mag = _envelope_spectrum(x[:, 0], cond.resonance_hz)
    bpfi = cond.bearing.defect_orders()["bpfi"] * cond.shaft_hz
    assert abs(_peak_hz(freqs, mag, 100.0, 400.0) - bpfi) <= 2 * freqs[1]
    floor = _floor(freqs, mag, 20.0, 400.0)
    for sideband in (bpfi - cond.shaft_hz, bpfi + cond.shaft_hz):
        assert _line(freqs, mag, sideband) > 5 * floor


def test_degradation_grows_the_fault_over_time() -> None:
    """Test that degradation_per_s raises the fault amplitude as the stream runs, capped at 1."""
    cond = MachineConditions(fault="imbalance", severity=0.1, degradation_per_s=0.5, noise_g=0.0)
    x = generate(cond, int(4 * FS), seed=1)
    seconds = _rms(x.reshape(4, -1, 3)[..., 0].T)
    assert seconds[0] < seconds[1] < seconds[2]
    full = generate(dataclasses.replace(cond, severity=1.0, degradation_per_s=0.0), int(FS), seed=1)
    assert seconds[3] == pytest.approx(_rms(full)[0], rel=0.05)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fault": "cracked_rotor"}, "unknown fault 'cracked_rotor'"),
        ({"severity": 1.5}, "severity must be within [0, 1]"),
        ({"severity": -0.1}, "severity must be within [0, 1]"),
        ({"severity": float("nan")}, "severity must be within [0, 1]"),
        ({"load": 2.0}, "load must be within [0, 1]"),
    ],
)
def test_invalid_conditions_raise_readable_errors(changes: dict[str, object], message: str) -> None:
    """Test that bad conditions fail at construction with a message naming the field."""
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MachineConditions(**changes)  # type: ignore[arg-type]


def test_resonance_above_nyquist_is_rejected() -> None:
    """Test that a sample rate too low for the resonance fails instead of aliasing."""
    with pytest.raises(ValueError, match="aliasing"):
        VibrationSimulator(MachineConditions(resonance_hz=3500.0), sample_rate_hz=4000.0)


@pytest.mark.parametrize("fault", FAULTS)
def test_random_conditions_are_valid_and_in_range(fault: str) -> None:
    """Test that dataset conditions carry the fault and stay inside the requested speeds."""
    cond = random_conditions(np.random.default_rng(0), fault, shaft_hz_range=(20.0, 40.0))
    assert cond.fault == fault
    assert 20.0 <= cond.shaft_hz <= 40.0
    assert (cond.severity == 0.0) == (fault == "healthy")
