"""`hubwatch status`: the state of each pin and of look-alike discovery, read from the database.

Reads only (the CLI opens the database read-only, so it works while the daemon writes); no Hub
request. The digest reuses these figures.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Mapping

from monitor.alerts.render import terminal
from monitor.config import LookalikeSettings, Pin
from monitor.detect.content import ContentState
from monitor.detect.state import RepoState
from monitor.detect.times import parse_iso
from monitor.hub.client import UNREACHABLE
from monitor.hub.models import RepoId

# RepoState.unavailable_kind (pin_check._unavailable) -> the state word status shows.
_UNAVAILABLE = {"disabled by the Hub": "disabled", "gated, no access": "gated"}


@dataclass(frozen=True)
class PinStatus:
    repo: str
    type: str
    track: str | None
    revision: str | None
    state: str  # ok | pending | unknown | unreachable | unavailable | gated | disabled | ref_missing | revision_unreachable
    last_checked: str | None
    last_ok: str | None
    heads: Mapping[str, str | None] = field(default_factory=dict)
    open_findings: int = 0
    last_error: str | None = None
    content: str = "not_inspected"  # clean | flagged | not_inspected (detect/content.py: the audit, then moves)
    content_reason: str | None = "not inspected yet"
    last_ok_age_seconds: int | None = None  # how long ago the Hub last answered for this pin's repo

    def to_json(self) -> dict[str, Any]:
        return {"kind": "pin", **asdict(self), "heads": dict(self.heads)}


def pin_state(pin: Pin, st: RepoState | None) -> str:
    """One word for where a pin stands after its last check."""
    if st is None or st.checked_at is None:
        return "pending"  # never checked yet
    if st.unknown_since is not None:
        return "unreachable" if (st.last_error or "").startswith(UNREACHABLE) else "unknown"
    if st.unavailable_kind is not None:
        return _UNAVAILABLE.get(st.unavailable_kind, "unavailable")
    if st.disabled:
        return "disabled"
    if pin.revision and st.reachable.get(pin.revision) is False:
        return "revision_unreachable"
    if pin.track and st.baseline and pin.track not in st.branches and pin.track not in st.tags:
        return "ref_missing"
    if st.gated:
        # The Hub answers refs and metadata of a gated repo to anyone (watched as usual), commits and
        # files only with access granted to our token: not "ok" without saying so.
        return "gated"
    return "ok"


def content_of(text: str | None) -> tuple[str, str | None]:
    """(content, reason) of a pin from its stored content state."""
    cs = ContentState.from_json(text)
    if cs is None:
        return "not_inspected", "not inspected yet"
    if cs.status == "not_inspected" and cs.retry:
        return cs.status, f"{cs.reason or 'a download failed'} (tried again at the next check)"
    return cs.status, cs.reason


def pin_status(pin: Pin, st: RepoState | None, open_by_subject: Mapping[str, int],
               content: str | None = None, now: datetime | None = None) -> PinStatus:
    heads: dict[str, str | None] = {}
    if pin.track and st is not None and st.baseline:  # before a first answer the head is unknown, not absent
        heads[pin.track] = st.branches.get(pin.track) or st.tags.get(pin.track)
    subject = RepoId(pin.type, pin.repo).web_path.lower()
    last_ok = parse_iso(st.last_ok) if st else None
    age = max(0, int((now - last_ok).total_seconds())) if now is not None and last_ok is not None else None
    return PinStatus(pin.repo, pin.type, pin.track, pin.revision, pin_state(pin, st),
                     st.checked_at if st else None, st.last_ok if st else None, heads,
                     open_by_subject.get(subject, 0), st.last_error if st else None, *content_of(content), age)


def pin_statuses(pins: tuple[Pin, ...], states: Mapping[str, str], open_by_subject: Mapping[str, int],
                 contents: Mapping[str, str] | None = None, now: datetime | None = None) -> list[PinStatus]:
    """`states`: repo key -> stored state JSON (Store.load_states()); `contents`: repo key ->
    stored content state (Store.load_contents()); `now` gives each last_ok's age."""
    parsed = {key: RepoState.from_json(text) for key, text in states.items()}
    return [pin_status(p, parsed.get(p.key), open_by_subject, (contents or {}).get(p.key), now) for p in pins]


def age_text(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def quota_status(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The quota state per bucket the last scan left (jobs/quota.py), as `status` shows it."""
    if not stored:
        return None
    return {"kind": "quota", "at": stored.get("at"), "buckets": stored.get("buckets", {})}


def render_quota(d: Mapping[str, Any]) -> str:
    parts = []
    for name, b in sorted(d["buckets"].items(), key=lambda kv: ("api", "resolvers", "pages").index(kv[0])
                          if kv[0] in ("api", "resolvers", "pages") else 9):
        if not isinstance(b, dict):
            continue
        reset = str(b.get("reset", ""))[11:19]
        parts.append(f"{name} {b.get('remaining')} of {b.get('quota')} left, resets {reset} UTC"
                     + (f", paused {b['paused_for']:.0f}s after a 429" if b.get("paused_for") else ""))
    return f"Hub quota (as of {d.get('at') or 'unknown'}): " + "; ".join(parts)


def lookalike_status(la: LookalikeSettings, probes: Mapping[str, tuple[datetime, bool]],
                     last_run_json: str | None, found: Mapping[str, bool] | None = None) -> dict[str, Any] | None:
    """Discovery's last run, how much of the candidate space has been probed, and its budget;
    None when no protected names are configured (discovery is off). `found`: the subjects of
    look-alike findings (lower-case) -> still open (not acknowledged): a look-alike met by the
    feed or a search exists as surely as one a probe found."""
    if not la.protected:
        return None
    from monitor.jobs.lookalikes import candidate_queue
    from monitor.jobs.lookup import screener_for

    skip = {p.lower() for p in la.protected} | {a.lower() for a in la.allow}
    candidates = candidate_queue(screener_for(la.protected, la.allow), la.protected, skip)
    covered = sum(1 for c in candidates if c.lower() in probes)
    try:
        last = json.loads(last_run_json) if last_run_json else None
    except ValueError:
        last = None
    last = last if isinstance(last, dict) else None
    found = found or {}
    existing = {name for name, (_, hit) in probes.items() if hit} | set(found)
    return {"kind": "lookalikes", "protected": len(la.protected), "candidates": len(candidates),
            "candidates_covered": covered, "known_existing": len(existing),
            "open_findings": sum(1 for is_open in found.values() if is_open),
            "probe_budget": la.probe_budget, "every_seconds": la.every,
            "last_run_at": last.get("at") if last else None, "last_run": last}


def render_pin(s: PinStatus) -> str:
    """One line for a terminal. The error text carries Hub-controlled text (X-Request-Id, error
    messages): it goes through the same terminal escaping as `findings`, as does everything else."""
    heads = ", ".join(f"{ref}={(sha or 'absent')[:12]}" for ref, sha in s.heads.items()) or "-"
    pin = f"{s.type}:{s.repo}" + (f"@{s.track}" if s.track else "") + (f" rev {s.revision[:12]}" if s.revision else "")
    content = s.content + (f" ({s.content_reason})" if s.content_reason and s.content != "clean" else "")
    line = (f"{s.state:<12} {pin}  heads {heads}  checked {s.last_checked or 'never'}  "
            f"last ok {s.last_ok or 'never'}"
            + (f" ({age_text(s.last_ok_age_seconds)})" if s.last_ok_age_seconds is not None else "")
            + f"  open findings {s.open_findings}  content {content}")
    return terminal(line + (f"  error: {s.last_error}" if s.last_error else ""))


def render_lookalikes(d: Mapping[str, Any]) -> str:
    last = d.get("last_run") or {}
    run = (f"last run {d['last_run_at']} ({last.get('probed', 0)} probed, {last.get('assessed', 0)} assessed, "
           f"{last.get('requests', 0)} requests, {last.get('errors', 0)} errors)") if d.get("last_run_at") else "never run"
    budget = last.get("budget") or {}
    left = f", request budget left then {budget['remaining']} of {budget['quota']}" if "remaining" in budget else ""
    return terminal(f"look-alike discovery: {run}; {d['candidates_covered']} of {d['candidates']} candidate names "
                    f"covered, {d['known_existing']} exist, {d.get('open_findings', 0)} open look-alike finding(s); "
                    f"probe budget {d['probe_budget']} requests per cycle{left}")


def lookalike_subjects(rows) -> dict[str, bool]:
    """Subjects of stored look-alike findings -> whether one of them is still open (not acknowledged)."""
    out: dict[str, bool] = {}
    for row in rows:
        key = row.finding.subject.lower()
        out[key] = out.get(key, False) or row.acked_at is None
    return out


def sink_rows(dead_sinks, by_sink: Mapping[tuple[str, str], int], dead_letters, keys: Mapping[str, str]) -> list[dict]:
    """One row per sink with a dead mark or dead letters: what it refused, and which alerts wait."""
    marks = {d.sink: d for d in dead_sinks}
    names = sorted(set(marks) | {sink for (sink, state), n in by_sink.items() if state == "dead" and n})
    rows = []
    for name in names:
        mark = marks.get(name)
        rows.append({"kind": "sink", "sink": name, "key": keys.get(name, name),
                     "dead": mark is not None, "answer": mark.answer if mark else None,
                     "dead_since": mark.at if mark else None,
                     "dead_letters": by_sink.get((name, "dead"), 0), "waiting": by_sink.get((name, "pending"), 0),
                     "fingerprints": [i.label for i in dead_letters if i.sink == name][:20]})
    return rows


def render_sink(row: Mapping[str, Any]) -> str:
    state = f"dead since {row['dead_since']} ({row['answer']})" if row["dead"] else "accepting"
    fps = ", ".join(row["fingerprints"][:5]) + (" …" if len(row["fingerprints"]) > 5 else "")
    return (f"sink {row['sink']} ({row['key']}): {state}; {row['dead_letters']} dead letter(s)"
            f"{': ' + fps if fps else ''}; {row['waiting']} waiting; after the fix: hubwatch redeliver --all")
