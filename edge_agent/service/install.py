"""`edge-agent service install | uninstall`: put the agent on a device as a hardened systemd
service, upgrade it in place, or take it off again.

Every step is a small action that can be printed (`--dry-run`) or run, against the real system
or a `--root` directory (a disk image being prepared, or a test). Running install again over an
existing install upgrades the program and keeps the config and the state. Uninstall keeps the
config and the state unless asked to purge them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import EdgeError
from edge_agent.service.arguments import add_arguments

UNIT = "edge-agent.service"
USER = "edge-agent"
PREFIX = Path("/opt/edge-agent")
VENV = PREFIX / "venv"
CONFIG_DIR = Path("/etc/edge-agent")
STATE_DIR = Path("/var/lib/edge-agent")
UNIT_DIR = Path("/etc/systemd/system")
SYSUSERS = Path("/usr/lib/sysusers.d/edge-agent.conf")
CHECKOUT = Path(__file__).resolve().parents[2]  # when run from a checkout (editable install)
REFERENCE_MODELS = ("vibration-fault",)  # what the config template runs until it is edited


class InstallError(EdgeError):
    """A step of install or uninstall failed; the message names the step."""


@dataclass(frozen=True)
class Step:
    what: str
    run: Callable[[], None]


def _command(*argv: str | Path) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise InstallError(
                f"{' '.join(map(str, argv))}: {detail[-1] if detail else done.returncode}"
            )

    return run


def _in_order(*actions: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        for action in actions:
            action()

    return run


def _copytree(source: Path, target: Path) -> Callable[[], None]:
    return lambda: shutil.copytree(source, target)


def _copy(source: Path, target: Path, mode: int) -> Callable[[], None]:
    def run() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(mode)

    return run


def _group_id(group_file: Path, name: str) -> int:
    """The id of group `name` in an /etc/group file (the root's, not necessarily this host's)."""
    for line in group_file.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    raise InstallError(f"group {name} not found in {group_file}")


def _share_with_group(group_file: Path, paths: dict[Path, int]) -> Callable[[], None]:
    """Owner root, group `USER`, the given modes: the service reads its config (systemd's
    ConfigurationDirectory= leaves the folder to root), nobody else does, only root writes.
    Skipped when an unprivileged user prepares a --root tree (it cannot chown)."""

    def run() -> None:
        gid = _group_id(group_file, USER)
        for path, mode in paths.items():
            if os.geteuid() == 0:
                os.chown(path, 0, gid)
            path.chmod(mode)

    return run


def _pip_install_copy(pip: list[str | Path], source: Path, extra: str) -> Callable[[], None]:
    """pip install `source[extra]` from a temporary copy: building in place would leave
    root-owned build/ and *.egg-info folders in the operator's checkout, which then break
    every build there as that user ("Cannot update time stamp of directory")."""
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "wheelhouse", "__pycache__")

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="edge-pdm-build-") as folder:
            copy = Path(folder) / "edge-pdm"
            shutil.copytree(source, copy, ignore=skip, symlinks=True)
            _command(*pip, f"{copy}[{extra}]")()

    return run


class Installer:
    def __init__(
        self,
        root: Path = Path("/"),
        wheelhouse: Path | None = None,
        system_site_packages: bool = False,
        python: str = sys.executable,
        source: Path = CHECKOUT,
    ) -> None:
        """`source` is the checkout or unpacked sdist whose systemd/ and models/ folders are
        installed (and which pip installs, unless a wheelhouse is given)."""
        self.source = source
        self.systemd_files = source / "systemd"
        self.root = root
        self.wheelhouse = wheelhouse
        self.system_site_packages = system_site_packages
        self.python = python
        self.live = root == Path("/")  # only then talk to the running systemd

    def at(self, path: Path) -> Path:
        return self.root / path.relative_to("/")

    def _systemctl(self, *args: str) -> Callable[[], None]:
        """systemctl on the running system, or offline on the root (links only)."""
        return _command("systemctl", *([] if self.live else [f"--root={self.root}"]), *args)

    def install_steps(self) -> list[Step]:
        if not (self.systemd_files / UNIT).is_file():
            raise InstallError(
                f"{self.systemd_files / UNIT} not found: give --source, a checkout or unpacked "
                "sdist of edge-pdm (its systemd/ folder holds the unit and templates)"
            )
        venv, config = self.at(VENV), self.at(CONFIG_DIR / "agent.toml")
        upgrading = venv.exists()
        steps = [
            Step(
                f"install {SYSUSERS} (system user {USER})",
                _copy(self.systemd_files / "edge-agent.sysusers", self.at(SYSUSERS), 0o644),
            ),
            Step(
                f"create user {USER} (systemd-sysusers)",
                _in_order(
                    lambda: self.at(Path("/etc")).mkdir(parents=True, exist_ok=True),
                    _command("systemd-sysusers", f"--root={self.root}", self.at(SYSUSERS)),
                ),
            ),
        ]
        if not upgrading:
            venv_args = ["--system-site-packages"] if self.system_site_packages else []
            steps.append(
                Step(
                    f"create virtualenv {VENV}",
                    _command(self.python, "-m", "venv", *venv_args, venv),
                )
            )
        pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip", "install", "--upgrade"]
        pip += ["--quiet"]
        if self.wheelhouse is not None:  # offline: wheels built on a workstation
            pip += ["--no-index", "--find-links", self.wheelhouse, "edge-pdm[agent]"]
            install = _command(*pip)
        else:
            install = _pip_install_copy(pip, self.source, "agent")
        steps.append(
            Step(("upgrade" if upgrading else "install") + f" edge-pdm[agent] into {VENV}", install)
        )
        if not config.exists():
            steps.append(
                Step(
                    f"write {CONFIG_DIR / 'agent.toml'} from the commented template",
                    _copy(self.systemd_files / "agent.toml", config, 0o640),
                )
            )
        else:
            steps.append(Step(f"keep {CONFIG_DIR / 'agent.toml'} (exists)", lambda: None))
        steps.append(
            Step(
                f"let group {USER} read {CONFIG_DIR} (root:{USER}, 0750; agent.toml 0640)",
                _share_with_group(
                    self.at(Path("/etc/group")), {config.parent: 0o750, config: 0o640}
                ),
            )
        )
        for bundle in REFERENCE_MODELS:
            target = self.at(STATE_DIR / "models" / bundle)
            if not target.exists():
                steps.append(
                    Step(
                        f"copy reference bundle {bundle} to {STATE_DIR / 'models'}",
                        _copytree(self.source / "models" / bundle, target),
                    )
                )
        steps.append(
            Step(
                f"install {UNIT_DIR / UNIT}",
                _copy(self.systemd_files / UNIT, self.at(UNIT_DIR / UNIT), 0o644),
            )
        )
        if self.live:
            steps.append(Step("systemctl daemon-reload", self._systemctl("daemon-reload")))
        steps.append(Step(f"enable {UNIT}", self._systemctl("enable", UNIT)))
        if self.live:
            steps.append(Step(f"(re)start {UNIT}", self._systemctl("restart", UNIT)))
        return steps

    def uninstall_steps(self, purge: bool) -> list[Step]:
        now = ["--now"] if self.live else []
        steps = [Step(f"stop and disable {UNIT}", self._systemctl("disable", *now, UNIT))]
        steps.append(
            Step(
                f"remove {UNIT_DIR / UNIT}",
                lambda: self.at(UNIT_DIR / UNIT).unlink(missing_ok=True),
            )
        )
        if self.live:
            steps.append(Step("systemctl daemon-reload", self._systemctl("daemon-reload")))
        steps.append(
            Step(f"remove {PREFIX}", lambda: shutil.rmtree(self.at(PREFIX), ignore_errors=True))
        )
        if purge:
            for path in (CONFIG_DIR, STATE_DIR):
                steps.append(
                    Step(
                        f"remove {path} (purge)",
                        lambda p=path: shutil.rmtree(self.at(p), ignore_errors=True),
                    )
                )
        else:
            steps.append(
                Step(f"keep {CONFIG_DIR} and {STATE_DIR} (--purge removes them)", lambda: None)
            )
        return steps


def execute(steps: list[Step], dry_run: bool, out: Callable[[str], None] = print) -> None:
    """Print each step as it runs (or, for a dry run, instead of running it)."""
    for number, step in enumerate(steps, 1):
        out(f"{'would ' if dry_run else ''}[{number}/{len(steps)}] {step.what}")
        sys.stdout.flush()  # each step before its error message, also into a pipe or a log
        if not dry_run:
            try:
                step.run()
            except OSError as exc:  # a file step: name the step, not a traceback
                raise InstallError(f"{step.what}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    installer = Installer(
        Path(args.root),
        Path(args.wheelhouse).resolve() if args.wheelhouse else None,
        args.system_site_packages,
        source=Path(args.source).resolve() if args.source else CHECKOUT,
    )
    steps = (
        installer.install_steps()
        if args.action == "install"
        else installer.uninstall_steps(args.purge)
    )
    execute(steps, args.dry_run)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python3 -m edge_agent.service.install`: needs only the standard library, so a fresh
    device can run it (or its dry run) from a checkout before anything is installed."""
    parser = argparse.ArgumentParser(prog="edge-agent service", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EdgeError as exc:
        print(f"edge-agent service: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
