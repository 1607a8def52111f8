"""Report (the daily digest) -> Slack message, generic-webhook JSON, one readable text. PURE.

Every value in a digest is a number or a timestamp we computed, but it is still escaped and
capped like Hub text: the renderers must stay safe whatever a future report carries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from monitor.alerts.render import clean, fallback_text, line, plain, rich, sent_at, t
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


def _triage_line(p: Mapping[str, Any]) -> str:
    """`finding 3f2a… (ref_moved org/x) acknowledged by alice via CLI`: one sentence, no markup."""
    verb = "acknowledged" if p.get("action") == "ack" else "unacknowledged"
    items = [i for i in p.get("findings") or () if isinstance(i, Mapping)]
    what = ", ".join(f"{clean(str(i.get('fingerprint')))[:32]} ({clean(str(i.get('kind')))[:40]} "
                     f"{clean(str(i.get('subject')))[:200]})" for i in items)
    more = _n(p, "count") - len(items)
    what += f" and {more} more" if more > 0 else ""
    note = f" — note: {clean(str(p['note']))[:300]}" if p.get("note") else ""
    return (f"finding{'s' if _n(p, 'count') > 1 else ''} {what} {verb} by {clean(str(p.get('by')))[:64]} "
            f"via {clean(str(p.get('via')))[:20]}{note}")


TITLES = {"digest": "hubwatch daily digest", "test": "hubwatch test message"}


def report_lines(report: Report) -> list[str]:
    """The report in plain sentences (no markup): the digest's lines, a triage notice's one, or a
    `hubwatch test-sink` message."""
    p = report.payload
    if report.kind == "triage":
        return [f"hubwatch triage at {clean(str(report.created_at))[:40]}", _triage_line(p)]
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
    if report.kind == "triage":
        emoji = ":white_check_mark:" if report.payload.get("action") == "ack" else ":arrows_counterclockwise:"
        return {"text": fallback_text(f"{emoji} {lines[1]}", limit=2000), "mrkdwn": False,
                "blocks": [rich(line({"type": "emoji", "name": emoji.strip(":")}, t(" " + plain(lines[1], 2000))))],
                "unfurl_links": False, "unfurl_media": False}
    quiet = _n(report.payload, "changes") == 0 and _n(report.payload, "open_findings") == 0
    emoji = ":white_check_mark:" if quiet else ":clipboard:"
    items = [line(t(plain(text, 500))) for text in lines[1:]]
    return {
        "text": fallback_text(f"{lines[0]}: " + "; ".join(lines[1:])),
        "mrkdwn": False,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                        "text": f"{emoji} {TITLES.get(report.kind, 'hubwatch report')}"}},
            rich({"type": "rich_text_list", "style": "bullet", "elements": items}),
            rich(line(t(plain(lines[0], 300), italic=True))),
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
