"""A tiny sd_notify(3) client: readiness, watchdog and stopping messages for systemd (Type=notify).

No dependency (not libsystemd, not python-systemd): one AF_UNIX datagram to $NOTIFY_SOCKET.
Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op, and a failure to notify is
logged at DEBUG and never raised: a monitor must not stop monitoring because the service
manager's socket went away.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("hubwatch.sd_notify")


def _address(path: str) -> bytes:
    # "@name" is a Linux abstract socket: its address starts with a NUL byte, not "@".
    raw = os.fsencode(path)
    return b"\0" + raw[1:] if raw.startswith(b"@") else raw


def notify(*lines: str) -> bool:
    """Send `lines` ("KEY=value") as one message; True when it was sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or not lines:
        return False
    try:
        # A value must stay on its line: a newline would smuggle in another assignment.
        message = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, _address(path))
        return True
    except Exception as e:  # OSError mostly; never let notification break the caller
        log.debug("sd_notify to %s failed: %s", path, e)
        return False


def ready(status: str = "running") -> bool:
    return notify("READY=1", f"STATUS={status}")


def stopping(status: str = "stopping") -> bool:
    return notify("STOPPING=1", f"STATUS={status}")


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds within which systemd expects WATCHDOG=1 ($WATCHDOG_USEC), or None when it does not.

    $WATCHDOG_PID names the process the watchdog applies to; a child that inherited the
    environment is not it.
    """
    try:
        pid = os.environ.get("WATCHDOG_PID")
        if pid and int(pid) != os.getpid():
            return None
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
