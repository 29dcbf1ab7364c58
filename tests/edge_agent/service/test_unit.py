"""The systemd unit as shipped: installed into a temporary root by the real installer, verified
by systemd-analyze, scored for exposure, upgraded in place and removed; and the interpreter
proven to run with W^X memory, which the unit's MemoryDenyWriteExecute demands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import load_agent_config
from edge_agent.service import install
from tests.conftest import REPO_ROOT, run_cli

UNIT = REPO_ROOT / "systemd" / "edge-agent.service"
MAX_EXPOSURE = 1.5  # the bar for the unit with any drop-in
UNIT_EXPOSURE = 1.0  # the unit as shipped


def _run(*argv: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _service(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli("service", *map(str, args), timeout=300)


def _exposure(unit_dir: Path) -> float:
    found = _run("systemd-analyze", "security", "--offline=yes", unit_dir / "edge-agent.service")
    match = re.search(r"Overall exposure level for edge-agent.service: ([0-9.]+)", found.stdout)
    assert match, found.stdout + found.stderr
    return float(match.group(1))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real install (venv reusing this interpreter's packages) into a temporary root."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: install Debian's systemd package (.ci/run does)")
    root = tmp_path_factory.mktemp("root")
    done = _service("install", "--root", root, "--system-site-packages")
    assert done.returncode == 0, done.stderr
    return root


def test_install_lays_out_user_program_config_unit_and_enables_it(installed: Path) -> None:
    """Test that install creates the system user, the virtualenv with the agent, the config
    from the template (which validates), a reference bundle, the unit and its enable link."""
    assert re.search(r"^edge-agent:x:\d+:\d+:", (installed / "etc/passwd").read_text(), re.M)
    agent = installed / "opt/edge-agent/venv/bin/edge-agent"
    assert _run(agent, "--help").returncode == 0
    config = installed / "etc/edge-agent/agent.toml"
    assert load_agent_config(config).device_id == "edge-device-01"
    assert (installed / "var/lib/edge-agent/models/vibration-fault/manifest.json").is_file()
    unit = installed / "etc/systemd/system/edge-agent.service"
    assert unit.read_text() == UNIT.read_text()
    link = installed / "etc/systemd/system/multi-user.target.wants/edge-agent.service"
    assert link.is_symlink()


def test_config_is_readable_by_the_service_group_only(installed: Path) -> None:
    """Test that /etc/edge-agent and agent.toml belong to root with group edge-agent (0750,
    0640): systemd leaves a ConfigurationDirectory= to root, and a root-only config stopped the
    service at its first start ("cannot read config file ... Permission denied")."""
    folder, config = installed / "etc/edge-agent", installed / "etc/edge-agent/agent.toml"
    assert (folder.stat().st_mode & 0o777, config.stat().st_mode & 0o777) == (0o750, 0o640)
    if os.geteuid() == 0:
        group = re.search(r"^edge-agent:x:(\d+):", (installed / "etc/group").read_text(), re.M)
        assert group, "no group edge-agent"
        assert {(p.stat().st_uid, p.stat().st_gid) for p in (folder, config)} == {
            (0, int(group.group(1)))
        }


def test_unit_leaves_proc_cpuinfo_to_the_interpreter() -> None:
    """Test that the unit does not set ProcSubset=pid: it hides /proc/cpuinfo, and LiteRT's
    XNNPACK then fails to start and falls back to kernels ~100x slower (seen under systemd)."""
    settings = [line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line]
    assert "ProcSubset" not in {key.strip() for key, _ in settings if not key.startswith("#")}


def test_credentials_drop_in_loads_only_the_password_as_shipped() -> None:
    """Test that the credentials drop-in, copied as it is, names only the broker password: the
    TLS client key line is commented out, since a missing file stops the start
    ("Failed to set up credentials", 243/CREDENTIALS, seen under systemd 252)."""
    lines = (REPO_ROOT / "systemd/credentials.conf").read_text().splitlines()
    loaded = [line for line in lines if line.startswith("LoadCredential=")]
    assert loaded == ["LoadCredential=mqtt-password:/etc/edge-agent/secrets/mqtt-password"]
    assert "#LoadCredential=mqtt-tls-key:/etc/edge-agent/secrets/client.key" in lines


def test_reload_needs_only_the_shell() -> None:
    """Test that ExecReload= sends SIGHUP with the shell's built-in kill: /bin/kill comes from
    procps, which a minimal Debian lacks, and there `systemctl reload` failed (status=203/EXEC)."""
    reload = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecReload=")]
    assert reload == ['ExecReload=/bin/sh -c "kill -HUP ${MAINPID}"'], reload


def test_ip_allow_list_keeps_localhost_in_the_unit_and_every_drop_in() -> None:
    """Test that localhost stays allowed: paho's network thread connects to itself over a
    loopback TCP socket pair, and with localhost denied the agent hung before READY=1 (seen
    under systemd). A drop-in may add addresses but must not empty the list."""
    allow = [
        line.split("=", 1)[1].split()
        for line in UNIT.read_text().splitlines()
        if line.startswith("IPAddressAllow=")
    ]
    assert allow and "localhost" in allow[-1], allow
    for drop_in in (REPO_ROOT / "systemd/drop-ins").glob("*.conf"):
        lines = [line.strip() for line in drop_in.read_text().splitlines()]
        assert "IPAddressAllow=" not in lines, f"{drop_in.name} empties the allow-list"


def test_each_step_is_printed_before_the_error_that_stops_it(tmp_path: Path) -> None:
    """Test that a failing install shows the failing step before its error, also when its
    output goes into a pipe (a log, `| tee`), where stdout is block-buffered."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "systemd", source / "systemd")
    (source / "systemd/edge-agent.sysusers").unlink()  # step 1 fails
    argv = ["install", "--source", source, "--root", tmp_path / "root"]
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent.service.install", *map(str, argv)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[1/") and "edge-agent.conf" in lines[0], done.stdout
    assert lines[1].startswith("edge-agent service: error:"), done.stdout


def test_install_sh_runs_the_installer_from_the_checkout_with_absolute_folders(
    tmp_path: Path,
) -> None:
    """Test that systemd/install.sh hands over to the standard-library installer with the
    system's Python (PYTHON), from the checkout, with --wheelhouse and --root made absolute
    against the folder it was started in."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\n[ "$1" = -c ] && exit 0\nprintf "%s\\n" "$PWD" "$@"\n')
    fake.chmod(0o755)
    argv = ["--wheelhouse", "wh", "--root=img", "--system-site-packages"]
    done = subprocess.run(
        ["sh", REPO_ROOT / "systemd/install.sh", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": str(fake)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        str(REPO_ROOT),
        *("-m", "edge_agent.service.install", "install", "--source", str(REPO_ROOT)),
        *("--wheelhouse", str(tmp_path / "wh"), f"--root={tmp_path / 'img'}"),
        "--system-site-packages",
    ]


def test_source_install_builds_from_a_copy_without_git_or_build_files(tmp_path: Path) -> None:
    """Test that pip gets a temporary copy of the checkout, without .git, build/, *.egg-info
    or a wheelhouse, so a root install leaves no root-owned build files in the checkout."""
    source = tmp_path / "checkout"
    for folder in (".git", "build", "edge_pdm.egg-info", "wheelhouse", "edge_agent"):
        (source / folder).mkdir(parents=True)
    (source / "pyproject.toml").write_text("")
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    seen = tmp_path / "seen.txt"
    record = f"import os, sys; open({str(seen)!r}, 'w').write(' '.join(sorted(os.listdir("
    record += "sys.argv[1].removesuffix('[agent]')))) + ' ' + sys.argv[1])"
    install._pip_install_copy([sys.executable, "-c", record], source, "agent")()
    *names, argument = seen.read_text().split()
    assert names == ["edge_agent", "pyproject.toml"], names
    assert argument.endswith("/edge-pdm[agent]") and not argument.startswith(str(source))
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before


def test_installed_unit_passes_systemd_analyze_verify(installed: Path, tmp_path: Path) -> None:
    """Test `systemd-analyze verify` on the installed unit, its ExecStart pointing into the
    temporary root (verify checks that the program exists and is executable)."""
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent", str(installed / "opt/edge-agent")))
    done = _run("systemd-analyze", "verify", unit, cwd=tmp_path)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_exposure_scores_of_the_unit_and_its_device_drop_ins(tmp_path: Path) -> None:
    """Test that `systemd-analyze security` scores the unit at most 1.0, and the unit with each
    drop-in (sensor bus, Coral, public broker) at most 1.5."""
    scores = {"unit": _exposure(UNIT.parent)}
    for drop_in in sorted((REPO_ROOT / "systemd/drop-ins").glob("*.conf")):
        folder = tmp_path / drop_in.stem
        (folder / "edge-agent.service.d").mkdir(parents=True)
        shutil.copy(UNIT, folder)
        shutil.copy(drop_in, folder / "edge-agent.service.d")
        scores[drop_in.stem] = _exposure(folder)
    print("exposure:", scores)
    assert set(scores) == {"unit", "sensor-bus", "coral", "public-broker"}
    assert all(score <= MAX_EXPOSURE for score in scores.values()), scores
    assert scores["unit"] <= UNIT_EXPOSURE, scores


def test_install_again_upgrades_in_place_and_uninstall_keeps_state(installed: Path) -> None:
    """Test that a second install keeps an edited config and the state, that a dry run
    changes nothing, and that uninstall removes program and unit but keeps config and state
    (and --purge removes those too)."""
    config = installed / "etc/edge-agent/agent.toml"
    config.write_text(config.read_text().replace("edge-device-01", "press-07"))
    spool = installed / "var/lib/edge-agent/spool/press-07@broker_1883-0.sqlite3"
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_bytes(b"state")
    upgrade = _service("install", "--root", installed, "--system-site-packages")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "upgrade edge-pdm[agent]" in upgrade.stdout and "keep /etc/edge-agent" in upgrade.stdout
    assert load_agent_config(config).device_id == "press-07" and spool.read_bytes() == b"state"
    before = sorted(p.relative_to(installed) for p in installed.rglob("*"))
    dry = _service("uninstall", "--root", installed, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("would [1/")
    assert sorted(p.relative_to(installed) for p in installed.rglob("*")) == before
    removed = _service("uninstall", "--root", installed)
    assert removed.returncode == 0, removed.stderr
    assert not (installed / "opt/edge-agent").exists()
    assert not (installed / "etc/systemd/system/edge-agent.service").exists()
    assert not (
        installed / "etc/systemd/system/multi-user.target.wants/edge-agent.service"
    ).exists()
    assert config.exists() and spool.exists()
    purged = _service("uninstall", "--root", installed, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not config.exists() and not spool.exists()


MDWE_WRAPPER = """
import ctypes, runpy, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE failed: errno {ctypes.get_errno()}")
sys.argv = ["edge-agent", *sys.argv[1:]]
runpy.run_module("edge_agent.cli", run_name="__main__")
"""


def test_interpreter_runs_with_memory_that_is_never_writable_and_executable() -> None:
    """Test that every reference bundle verifies and runs its golden test with the kernel
    refusing any memory mapping that gains execute permission (PR_SET_MDWE), the guarantee
    MemoryDenyWriteExecute=yes gives (systemd enforces it with seccomp instead)."""
    refused = _run(
        sys.executable,
        "-c",
        MDWE_WRAPPER.split("sys.argv")[0]
        + "import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\nexcept PermissionError:\n"
        "    sys.exit(0)\nsys.exit('a writable and executable mapping was allowed')",
    )
    assert refused.returncode == 0, refused.stderr  # the restriction is real in this process
    for bundle in ("vibration-fault", "vibration-anomaly", "cmapss-fd001-rul"):
        done = _run(
            sys.executable, "-c", MDWE_WRAPPER, "check-model", REPO_ROOT / "models" / bundle
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "golden max error" in done.stdout
