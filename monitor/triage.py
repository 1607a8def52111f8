"""Acknowledging findings, shared by `hubwatch ack/unack` and the `/hubwatch ack` Slack command.

An acknowledged finding is hidden from `hubwatch findings`. An ack never makes an alert disappear
unseen: an alert of the finding not yet delivered still goes out once, marked "acknowledged by …
before delivery". Every ack and unack records who did it (`acked_by`) and is posted to the sinks as
a short notice (a `triage` report, queued in the same transaction). Acknowledging is by exact
fingerprint: a later change has a new fingerprint and alerts as usual.
"""

from __future__ import annotations

import getpass
import os
import re
from datetime import datetime
from typing import Mapping, Sequence

from monitor.alerts.render import clean
from monitor.detect.reports import Report
from monitor.detect.times import iso
from monitor.errors import UsageError

_FINGERPRINT = re.compile(r"[0-9a-fA-F]{32}")
MAX_ACTOR = 64
NOTICE_FINDINGS = 20  # fingerprints listed in one notice; the rest are counted


def parse_fingerprint(text: str) -> str | None:
    """The fingerprint in canonical (lower-case) form, or None when `text` is not one."""
    text = text.strip()
    return text.lower() if _FINGERPRINT.fullmatch(text) else None


def actor_name(text: str) -> str:
    """Who did it, as recorded: printable, at most MAX_ACTOR characters ("unknown" when empty)."""
    kept = "".join(c for c in clean(text) if c.isprintable() and c not in "`*<>|")
    return kept.strip()[:MAX_ACTOR] or "unknown"


def cli_actor(env: Mapping[str, str] | None = None) -> str:
    """The CLI's actor: $HUBWATCH_ACTOR, else $SUDO_USER (the person behind `sudo hubwatch ack`),
    else the login name."""
    env = os.environ if env is None else env
    for key in ("HUBWATCH_ACTOR", "SUDO_USER"):
        if env.get(key, "").strip():
            return actor_name(env[key])
    try:
        return actor_name(getpass.getuser())
    except (KeyError, OSError):  # no passwd entry for our uid (containers)
        return f"uid {os.getuid()}"


def _known(store, fps: Sequence[str]) -> dict[str, tuple[str, str]]:
    """fingerprint -> (kind, subject); UsageError naming the first unknown fingerprint."""
    known = store.kind_and_subject(fps)
    missing = [fp for fp in fps if fp not in known]
    if missing:
        raise UsageError(f"no finding with fingerprint {missing[0]}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + "; nothing changed")
    return known


def notice(action: str, actor: str, via: str, known: dict[str, tuple[str, str]], note: str | None,
           now: datetime) -> Report:
    """The short notice posted to the sinks: who (un)acknowledged what, from where."""
    items = [{"fingerprint": fp, "kind": kind, "subject": subject[:200]}
             for fp, (kind, subject) in list(known.items())[:NOTICE_FINDINGS]]
    payload = {"action": action, "by": actor, "via": via, "findings": items, "count": len(known),
               "note": note[:300] if note else None}
    return Report("triage", payload, iso(now))


def _line(verb: str, fp: str, kind: str, subject: str) -> str:
    return f"{verb} {fp} ({clean(kind)} {clean(subject)[:200]})"


def acknowledge(store, fps: Sequence[str], note: str | None, now: datetime, *, actor: str,
                via: str = "CLI", sinks: Sequence[str] = ()) -> list[str]:
    """Acknowledge every fingerprint, or none when one is unknown (UsageError). One line each."""
    known = _known(store, fps)
    store.ack(fps, note, now, actor, notice("ack", actor, via, known, note, now), sinks)
    return [_line("acknowledged", fp, *known[fp]) for fp in dict.fromkeys(fps)]


def withdraw(store, fps: Sequence[str], now: datetime, *, actor: str, via: str = "CLI",
             sinks: Sequence[str] = ()) -> list[str]:
    known = _known(store, fps)
    store.unack(fps, now, notice("unack", actor, via, known, None, now), sinks)
    return [_line("unacknowledged", fp, *known[fp]) for fp in dict.fromkeys(fps)]
