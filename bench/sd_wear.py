"""SD-card wear: bytes the spool really writes to a block device per hour, per fsync policy.

The agent runs the vibration simulator through both vibration models (12.5 results/s, about the
"10 results/s" of a typical device) and publishes over MQTT to a local Mosquitto, with its
spool on a fresh ext4 filesystem in a loop device. What the device received is read from the
kernel's block statistics (/sys/block/loopN/stat, sectors written: data, SQLite's log and
ext4's journal together), so page-cache tricks cannot hide a write. Log bytes (stderr, which
journald stores on the same card) are counted separately. Needs root (mount, loop devices).

    sudo python bench/sd_wear.py [--seconds 120] [--runs always:0 normal:0 off:0 normal:1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTOR = 512


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sectors_written(device: str) -> int:
    return int(Path(f"/sys/block/{Path(device).name}/stat").read_text().split()[6])


def mount_ext4(folder: Path) -> str:
    image = folder / "card.img"
    subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    (folder / "card").mkdir()
    subprocess.run(["mount", device, str(folder / "card")], check=True)
    return device


def unmount(folder: Path, device: str) -> None:
    subprocess.run(["umount", str(folder / "card")], check=False)
    subprocess.run(["losetup", "-d", device], check=False)


def config(folder: Path, port: int, fsync: str, interval: float) -> Path:
    models = "\n".join(
        f'[[models]]\nbundle = "{REPO / "models" / name}"\nsource = "motor"'
        for name in ("vibration-fault", "vibration-anomaly")
    )
    text = f"""device_id = "wear"
[mqtt]
host = "127.0.0.1"
port = {port}
[[sources]]
kind = "simulator"
id = "motor"
realtime = true
{models}
[[sinks]]
kind = "mqtt"
spool_dir = "{folder / "card" / "spool"}"
fsync = "{fsync}"
commit_interval_s = {interval}
"""
    path = folder / f"agent-{fsync}-{interval}.toml"
    path.write_text(text)
    return path


def measure(
    folder: Path, device: str, port: int, fsync: str, interval: float, seconds: float
) -> dict:
    log = folder / f"agent-{fsync}-{interval}.log"
    with log.open("w") as stderr:
        agent = subprocess.Popen(
            [
                *(sys.executable, "-m", "edge_agent.cli", "run", "-c"),
                str(config(folder, port, fsync, interval)),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            time.sleep(3.0)  # models loaded, connected: measure the steady state only
            subprocess.run(["sync"], check=True)
            before, log_before, started = sectors_written(device), log.stat().st_size, time.time()
            time.sleep(seconds)
            subprocess.run(["sync"], check=True)  # what the page cache still holds counts too
            written = (sectors_written(device) - before) * SECTOR
            elapsed, log_bytes = time.time() - started, log.stat().st_size - log_before
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
    results = 12.5 * elapsed
    return {
        "fsync": fsync,
        "interval": interval,
        "seconds": elapsed,
        "device MB/h": written / elapsed * 3600 / 1e6,
        "bytes/result": written / results,
        "log kB/h": log_bytes / elapsed * 3600 / 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time per policy")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["always:0", "normal:0", "off:0", "normal:1", "normal:5"],
        help="fsync policy:commit_interval_s pairs",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("sd_wear.py needs root (it mounts an ext4 image on a loop device)")
    folder = Path(tempfile.mkdtemp(prefix="sd-wear-"))
    port = free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"
    )
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    device = mount_ext4(folder)
    try:
        rows = []
        for run in args.runs:
            policy, interval = run.split(":")
            rows.append(measure(folder, device, port, policy, float(interval), args.seconds))
    finally:
        unmount(folder, device)
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    print("## Spool writes to the card at 12.5 results/s (broker up, every result acknowledged)")
    print()
    print("| fsync | commit_interval_s | measured s | device MB/h | bytes/result | log kB/h |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['fsync']} | {row['interval']:g} | {row['seconds']:.0f} | "
            f"{row['device MB/h']:.1f} | "
            f"{row['bytes/result']:,.0f} | {row['log kB/h']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
