"""Write demo "pump" recordings in the bring-your-own-data CSV format (ts, ax, ay, az, label).

Stands in for data you logged from your own machine: three states, two machines for training and
a third for testing, 10 kHz, from the project's vibration simulator.

    python examples/byod/make_pump_data.py examples/byod
    edge-train train examples/byod/pump_faults.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge_agent.sim.vibration import MachineConditions, VibrationSimulator

RATE = 10_000.0
STATES = {"normal": "healthy", "bearing": "bearing_outer", "misaligned": "misalignment"}


def write(path: Path, seeds: list[int], seconds: float) -> None:
    start = 1_732_440_000.0
    with path.open("w") as handle:
        handle.write("ts,ax,ay,az,label\n")
        n = int(seconds * RATE)
        for seed in seeds:
            for label, fault in STATES.items():
                conditions = MachineConditions(
                    fault=fault, shaft_hz=24.0 + seed, resonance_hz=3000.0, load=0.8
                )
                block = VibrationSimulator(conditions, RATE, seed=seed).next_block(n)
                ts = start + np.arange(n) / RATE
                for t, (ax, ay, az) in zip(ts, block):
                    handle.write(f"{t:.4f},{ax:.5f},{ay:.5f},{az:.5f},{label}\n")
                start = ts[-1] + 5.0  # a pause between recordings: a time gap splits windows


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "pump_train.csv", seeds=[1, 2], seconds=10.0)
    write(folder / "pump_test.csv", seeds=[3], seconds=5.0)
    print(f"wrote {folder / 'pump_train.csv'} and {folder / 'pump_test.csv'}")


if __name__ == "__main__":
    main()
