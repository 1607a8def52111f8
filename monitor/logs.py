"""Logging set-up: warnings and errors by default (plus the daemon's one line per cycle on
`hubwatch.cycle`, unless quiet), JSON lines on request, secrets scrubbed from every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Iterable

_EXTRA = ("job", "subject", "fingerprint", "duration")


# A signed download URL (the CDN location a resolve redirects to) is a credential for its file:
# its query never reaches a log, whoever logged it (httpx's request lines at -vvv included).
_SIGNED_QUERY = re.compile(r"\?[^\s'\"]*(?:Signature|Signed|Key-Pair-Id|X-Amz-Credential|Expires)=[^\s'\"]*", re.I)


class Redactor(logging.Filter):
    """Replaces any known secret that slipped into a message or its arguments with ***, and the
    query of any signed URL with ?***."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if _SIGNED_QUERY.search(msg):
            record.msg, record.args = _SIGNED_QUERY.sub("?***", msg), None
        if self.secrets:
            msg = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            for s in self.secrets:
                msg = msg.replace(s, "***")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(s, "***")
            record.msg, record.args = msg, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        fields = getattr(record, "fields", None)  # extra={"fields": {...}}: numbers a machine reads
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info or record.exc_text:
            out["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """The text format. A message may quote the Hub (an error's X-Request-Id, a repo's file names):
    it goes through the terminal escaping `findings` uses, so no escape sequence or control
    character reaches a terminal (tracebacks, which are ours, are left as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if message.isascii() and message.isprintable():
            return super().formatMessage(record)
        from monitor.alerts.render import terminal

        record.message = terminal(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


CYCLE_LOGGER = "hubwatch.cycle"
LIFECYCLE_LOGGER = "hubwatch.lifecycle"


def json_record(msg: str, level: str = "info", logger: str = "hubwatch", **fields) -> str:
    """A JSON object shaped like our log records (ts, level, logger, msg) plus `fields`: for the
    lines a command prints whatever the verbosity (`hubwatch once`'s summary)."""
    out = {"ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": level,
           "logger": logger, "msg": msg}
    out.update({k: v for k, v in fields.items() if k not in out})
    return json.dumps(out, default=str)


def configure(verbosity: int = 0, fmt: str = "text", secrets: Iterable[str] = (), stream=None,
              quiet: bool = False) -> Redactor:
    """Install one handler on the root logger. Returns the redactor so a reload can update it.

    The daemon's cycle lines (`hubwatch.cycle`) show at the default verbosity: silence between
    cycles must not look like a hung daemon. `quiet` hides them (and leaves warnings and errors)."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redactor = Redactor(secrets)
    handler.addFilter(redactor)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_hubwatch", False):
            root.removeHandler(h)
    handler._hubwatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(CYCLE_LOGGER).setLevel(logging.WARNING if quiet and verbosity <= 0 else logging.INFO)
    # Start-up, shutdown and reloads are INFO and always shown: an operator must see them.
    logging.getLogger(LIFECYCLE_LOGGER).setLevel(logging.INFO)
    # Third-party chatter (httpx request lines carry URLs) stays at WARNING unless -vv.
    # huggingface_hub warns on every retried request; our own logs say what matters.
    global _third_party_level
    _third_party_level = (logging.DEBUG if verbosity >= 3 else logging.WARNING if verbosity >= 1 else logging.ERROR)
    for name in THIRD_PARTY:
        adopt_third_party(name)
    return redactor


THIRD_PARTY = ("httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "apscheduler", "huggingface_hub")
_third_party_level = logging.ERROR


def adopt_third_party(name: str) -> None:
    """Route a library's records through our handler at our level (huggingface_hub installs its own
    stderr handler at import, which would break --log-format json and bypass redaction)."""
    lg = logging.getLogger(name)
    for h in list(lg.handlers):
        lg.removeHandler(h)
    lg.propagate = True
    lg.setLevel(_third_party_level)
