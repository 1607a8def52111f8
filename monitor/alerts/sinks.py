"""Where alerts go: Slack incoming webhook, generic JSON webhook, stdout.

A sink sends one finding or raises `SinkError` saying whether retrying could help; it never retries
itself (delivery owns backoff, ordering and the outbox). Webhook URLs are bearer credentials: anyone
holding a Slack webhook URL can post into the channel. So they never appear in a repr, an error
message, a chained exception (`requests` puts the URL path in its exception texts) or a log record
(urllib3 logs request paths at DEBUG; a filter redacts them).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import re
import sys
import threading
from datetime import datetime, timezone
from typing import Callable, Mapping, Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit

import requests

from monitor.alerts.render import bounded_payloads, clean, slack_message, text_line
from monitor.alerts.render_report import report_json, report_slack, report_text
from monitor.alerts.vetted import VettedAdapter
from monitor.detect.findings import Finding
from monitor.detect.reports import Report
from monitor.errors import SinkError

MAX_RETRY_AFTER = 3600.0  # a bogus huge Retry-After must not silence alerts for days


@runtime_checkable
class Sink(Protocol):
    name: str

    def send(self, finding: Finding) -> None:
        """Deliver `finding` or raise SinkError(permanent=…, retry_after=…)."""

    def send_report(self, report: Report) -> None:
        """Deliver a report (the daily digest), same contract as `send`."""


class _Secrets(logging.Filter):
    """Redacts registered secrets from log records of the HTTP libraries."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def add(self, *values: str) -> None:
        with self.lock:
            self.secrets.update(v for v in values if len(v) >= 6)

    def redact(self, text: str) -> str:
        with self.lock:
            for s in sorted(self.secrets, key=len, reverse=True):
                text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = self.redact(msg)
        if red != msg:
            record.msg, record.args = red, ()
        return True


_REDACTOR = _Secrets()
for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_REDACTOR)


def redact_url(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/***`: enough to tell webhooks apart, nothing to post with."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    base = f"{parts.scheme}://{host}{port}"
    m = re.fullmatch(r"(/services/[A-Z0-9]{1,20}/[A-Z0-9]{1,20}/)[^/]+", parts.path)
    return base + (m.group(1) + "***" if m else "/***")


def _secret_parts(url: str) -> list[str]:
    """Every form in which (part of) the URL may show up in an exception or log text."""
    parts = urlsplit(url)
    path_q = parts.path + (f"?{parts.query}" if parts.query else "")
    found = [url, path_q, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""]
    found += [seg for seg in parts.path.split("/") if len(seg) >= 8 and not seg.isalpha()]
    if parts.path.startswith("/services/"):
        found.append(parts.path.rsplit("/", 1)[-1])
    return [p for p in found if len(p) >= 6]  # short parts ("/") are not secret and would mangle text


def _retry_after(value: str | None) -> float | None:
    """Retry-After is delta-seconds or an HTTP date (RFC 9110); garbage means 'not given'."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _HttpSink:
    """POST a JSON body, classify the outcome; subclasses choose the body and the permanent codes."""

    name = "http"
    last_answer: str | None = None  # the receiver's last answer, for `hubwatch test-sink`

    def __init__(self, url: str, *, timeout: float = 10.0, session: requests.Session | None = None,
                 headers: Mapping[str, str] | None = None, name: str | None = None) -> None:
        self._url = url
        self._shown = redact_url(url)
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self._secrets = _secret_parts(url) + [v for v in (headers or {}).values() if len(v) >= 6]
        _REDACTOR.add(*self._secrets)
        if name:
            self.name = name
        if session is None:
            session = requests.Session()
            # Explicitly no transport retries: a retried POST could post the alert twice. Only to
            # addresses the URL rule allows, whatever the name resolves to (monitor/alerts/vetted.py).
            session.mount("http://", VettedAdapter(max_retries=0))
            session.mount("https://", VettedAdapter(max_retries=0))
            session.trust_env = False  # no netrc credentials or env proxies picked up silently
        self._session = session

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._shown})"

    __str__ = __repr__

    @property
    def identity(self) -> str:
        """Which receiver this is, without revealing it: a dead-sink mark applies only while the
        URL is the same (a corrected URL is a new receiver)."""
        return hashlib.sha256(self._url.encode()).hexdigest()[:16]

    def _sink_dead(self, status: int) -> bool:
        """The receiver refuses the sink itself, not this message."""
        return status in (401, 403, 404, 410)

    def _scrub(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, "***")
        return re.sub(r"(with url: )\S+", r"\1***", text)

    def _body(self, finding: Finding) -> bytes:
        raise NotImplementedError

    def _report_body(self, report: Report) -> bytes:
        raise NotImplementedError

    def send_report(self, report: Report) -> None:
        self._deliver([self._report_body(report)])

    def _permanent(self, status: int) -> bool:
        return 400 <= status < 500 and status not in (408, 429)

    def _bodies(self, finding: Finding) -> list[bytes]:
        """Bodies to try in order; the next one only after a 413 (payload too large)."""
        return [self._body(finding)]

    def send(self, finding: Finding) -> None:
        self._deliver(self._bodies(finding))

    def _deliver(self, bodies: list[bytes]) -> None:
        """POST the first form; after a 413 the next, smaller one. A 413 to the last form is
        retried later: a receiver's size limit never dead-letters an alert or a digest."""
        for i, data in enumerate(bodies):
            error, status = self._attempt(data)
            if error is None:
                return
            if status == 413 and i + 1 < len(bodies):
                continue  # the receiver's size limit: try the smaller form now
            if status == 413:  # even the smallest form: retry later, never dead-letter
                error = SinkError(str(error), permanent=False, retry_after=error.retry_after)
            # Raised outside any except block on purpose: no __context__ carrying the URL.
            raise error

    def _attempt(self, data: bytes) -> tuple[SinkError | None, int | None]:
        """POST once: (None, status) on success, else (the error to raise, the status if any)."""
        try:
            resp = self._session.post(self._url, data=data, headers=self._headers,
                                      timeout=self._timeout, allow_redirects=False)
        except requests.Timeout as exc:
            return SinkError(f"{self}: timed out after {self._timeout:g}s ({type(exc).__name__})",
                             permanent=False), None
        except requests.RequestException as exc:
            detail = self._scrub(clean(str(exc)))[:300]
            return SinkError(f"{self}: {type(exc).__name__}: {detail}", permanent=False), None
        with resp:
            status, body = resp.status_code, self._scrub(clean(resp.text[:200]))
            self.last_answer = f"HTTP {status} {body}".rstrip()
            retry_after = _retry_after(resp.headers.get("Retry-After"))
        if 200 <= status < 300:
            return None, status
        return SinkError(f"{self}: HTTP {status} {body}".rstrip(), permanent=self._permanent(status),
                         retry_after=retry_after, sink_dead=self._sink_dead(status), status=status), status


class SlackSink(_HttpSink):
    """Slack incoming webhook: 400 dead-letters that message (bad payload); 403/404/410 (revoked or
    mistyped webhook, archived channel) mark the sink dead."""

    name = "slack"

    def _sink_dead(self, status: int) -> bool:
        return status in (403, 404, 410)

    def _body(self, finding: Finding) -> bytes:
        return json.dumps(slack_message(finding), ensure_ascii=False).encode("utf-8")

    def _report_body(self, report: Report) -> bytes:
        return json.dumps(report_slack(report), ensure_ascii=False).encode("utf-8")


class WebhookSink(_HttpSink):
    """Generic JSON webhook: the finding as data plus source/version/sent_at, at most
    `PAYLOAD_MAX_BYTES` (lists cut, with counts); a 413 is retried with the compact, then the
    minimal form."""

    name = "webhook"

    def __init__(self, url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None,
                 session: requests.Session | None = None, name: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        super().__init__(url, timeout=timeout, session=session, headers=headers, name=name)
        self._clock = clock

    def _bodies(self, finding: Finding) -> list[bytes]:
        return bounded_payloads(finding, now=self._clock())

    def _report_body(self, report: Report) -> bytes:
        return json.dumps(report_json(report, now=self._clock()), ensure_ascii=False, default=str).encode("utf-8")


class StdoutSink:
    """One line per finding on stdout (or `stream`): for `--sink stdout`, cron mail and debugging."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None, *, name: str | None = None) -> None:
        self._stream = stream
        if name:
            self.name = name

    def __repr__(self) -> str:
        return "StdoutSink()"

    identity = "stdout"

    def send(self, finding: Finding) -> None:
        self._write(text_line(finding))

    def send_report(self, report: Report) -> None:
        self._write(report_text(report))

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stdout  # looked up late so redirection/capture applies
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # broken pipe, closed file
            raise SinkError(f"stdout: {type(exc).__name__}", permanent=False) from None
