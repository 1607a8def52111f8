"""Report (the daily digest) -> Slack message, generic-webhook JSON, one readable text. PURE.

Every value in a digest is a number or a timestamp we computed, but it is still escaped and
capped like Hub text: the renderers must stay safe whatever a future report carries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from monitor.alerts.render import clean, fit, sent_at
from monitor.detect.reports import Report

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def _n(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _severities(payload: Mapping[str, Any]) -> str:
    by = payload.get("open_by_severity") or {}
    parts = [f"{by[s]} {s}" for s in SEVERITY_ORDER if isinstance(by, Mapping) and _n(by, s)]
    return f" ({', '.join(parts)})" if parts else ""


def _coverage(payload: Mapping[str, Any]) -> str | None:
    la = payload.get("lookalike")
    if not isinstance(la, Mapping):
        return None
    covered, total = _n(la, "candidates_covered"), _n(la, "candidates")
    pct = f" ({100 * covered // total}%)" if total else ""
    last = la.get("last_run_at") or "never"
    return (f"look-alike coverage: {covered} of {total} candidate names probed{pct}, "
            f"{_n(la, 'known_existing')} exist; last run {clean(str(last))[:40]}")


TITLES = {"digest": "hubwatch daily digest", "test": "hubwatch test message"}


def report_lines(report: Report) -> list[str]:
    """The digest (or a `hubwatch test-sink` message) in plain sentences (no markup)."""
    p = report.payload
    if report.kind == "test":
        return [f"hubwatch test message, {clean(str(p.get('sent_at', '?')))[:40]}",
                "a test of this alert sink (hubwatch test-sink): nothing happened, no action needed"]
    never = f" ({_n(p, 'pending')} never checked)" if _n(p, "pending") else ""
    lines = [
        f"hubwatch daily digest, {clean(str(p.get('period_start', '?')))[:40]} to "
        f"{clean(str(p.get('period_end', '?')))[:40]}",
        f"pins watched: {_n(p, 'pins')}{never}; unknown now: {_n(p, 'unknown')}; "
        f"unavailable: {_n(p, 'unavailable')}",
        f"changes in the last 24 h: {_n(p, 'changes')}; new look-alikes: {_n(p, 'new_lookalikes')}",
        f"open findings (not acknowledged): {_n(p, 'open_findings')}{_severities(p)}",
    ]
    coverage = _coverage(p)
    if coverage:
        lines.append(coverage)
    return lines


def report_text(report: Report) -> str:
    """One line for stdout: `[DIGEST] …; …`."""
    return f"[{clean(report.kind).upper()[:20]}] " + "; ".join(report_lines(report)[1:]) + \
        f" ({report_lines(report)[0]})"


def report_slack(report: Report) -> dict:
    lines = report_lines(report)
    quiet = _n(report.payload, "changes") == 0 and _n(report.payload, "open_findings") == 0
    emoji = ":white_check_mark:" if quiet else ":clipboard:"
    body = "\n".join(f"• {fit(line, 500)}" for line in lines[1:])
    return {
        "text": fit(f"{lines[0]}: " + "; ".join(lines[1:]), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                        "text": f"{emoji} {TITLES.get(report.kind, 'hubwatch report')}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body, "verbatim": True}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(lines[0], 300), "verbatim": True}]},
        ],
        "unfurl_links": False, "unfurl_media": False,
    }


def report_json(report: Report, *, source: str = "hubwatch", now: datetime | None = None) -> dict:
    """Generic-webhook body: `{"event": "digest", ...the figures..., "source", "version", "sent_at"}`."""
    body: dict[str, Any] = {"event": report.kind, **dict(report.payload), "created_at": report.created_at,
                            "source": source, "version": 1}
    if now is not None:
        body["sent_at"] = sent_at(now)
    return body
