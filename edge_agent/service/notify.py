"""The systemd notify protocol (sd_notify(3)): datagrams of `KEY=value` lines sent to the
socket named by $NOTIFY_SOCKET, a path or, with a leading '@', an abstract socket.

Small enough to own (no libsystemd binding is needed on a Pi). Without $NOTIFY_SOCKET every
call is a no-op, so the agent runs the same in a terminal and under systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("edge_agent.service")


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message; a failure is logged once and never raised (systemd may be gone
        while the agent stops)."""
        if self._socket is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._socket.sendto(message.encode("utf-8", "replace"), target)
            return True
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning(
                    "cannot notify systemd", extra={"socket": self.address, "error": str(exc)}
                )
            return False

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def watchdog(self) -> None:
        self.send(WATCHDOG=1)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets Type=notify-reload match the reply to the request (systemd 253+).
        self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.send(STOPPING=1, STATUS="stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval_s() -> float | None:
    """How often to ping: half of $WATCHDOG_USEC (as sd_watchdog_enabled(3) advises), if the
    watchdog is meant for this process ($WATCHDOG_PID absent or ours)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec), 1) / 2e6
    except ValueError:
        return None
