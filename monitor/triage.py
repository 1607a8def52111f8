"""Acknowledging findings, shared by `hubwatch ack/unack` and the `/hubwatch ack` Slack command.

An acknowledged finding is hidden from `hubwatch findings` and its undelivered alerts are never
sent (store.ack skips them in the same transaction). Acknowledging is by exact fingerprint: a
later change has a new fingerprint and alerts as usual.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Sequence

from monitor.alerts.render import clean
from monitor.errors import UsageError

_FINGERPRINT = re.compile(r"[0-9a-fA-F]{32}")


def parse_fingerprint(text: str) -> str | None:
    """The fingerprint in canonical (lower-case) form, or None when `text` is not one."""
    text = text.strip()
    return text.lower() if _FINGERPRINT.fullmatch(text) else None


def _describe(store, fps: Sequence[str]) -> dict[str, str]:
    """fingerprint -> "kind subject" for the ones that exist."""
    return {fp: f"{clean(kind)} {clean(subject)[:200]}"
            for fp, (kind, subject) in store.kind_and_subject(fps).items()}


def _known(store, fps: Sequence[str]) -> dict[str, str]:
    known = _describe(store, fps)
    missing = [fp for fp in fps if fp not in known]
    if missing:
        raise UsageError(f"no finding with fingerprint {missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + "; nothing changed")
    return known


def acknowledge(store, fps: Sequence[str], note: str | None, now: datetime) -> list[str]:
    """Acknowledge every fingerprint, or none when one is unknown (UsageError). One line each."""
    known = _known(store, fps)
    store.ack(fps, note, now)
    return [f"acknowledged {fp} ({known[fp]})" for fp in dict.fromkeys(fps)]


def withdraw(store, fps: Sequence[str]) -> list[str]:
    known = _known(store, fps)
    store.unack(fps)
    return [f"unacknowledged {fp} ({known[fp]})" for fp in dict.fromkeys(fps)]
