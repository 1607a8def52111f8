"""Finding -> Slack Block Kit message, generic JSON payload, one stdout line. PURE (no I/O, no clock).

Why so defensive: apart from `kind`, `severity`, `fingerprint` and `links`, everything in a finding
comes from the Hub, i.e. from the people we are watching (repo names, commit titles, author names,
file paths). In Slack mrkdwn `<` opens a control sequence (`<!channel>` pings everyone,
`<https://evil|docs>` disguises a link), so Hub text is entity-escaped, put in `verbatim` text
objects (no auto-linking of bare URLs or #channels), never used to build `<…|…>`, and stripped of
invisible/bidi characters, which could make a malicious file name look harmless. Slack has no
escape for its emphasis and code markers, so `*URGENT*`, `_x_`, `~x~` and a backtick in Hub text
are made inert with a WORD JOINER (U+2060, invisible) on both sides of the marker: a marker next
to a letter-like character never opens or closes a span, and the text still reads (and copies,
minus the joiners) as the Hub sent it. Mentions (`@channel`), `#channel` and `scheme://` get the
same joiner, for the `text` fallback, which Slack parses without `verbatim`. Every text is capped
to Slack's limits (an oversize field makes Slack reject the *whole* alert with `invalid_blocks`),
and the whole message stays under ~11k characters because Slack also rejects messages whose blocks
are too long in total (`msg_blocks_too_long`, observed at ~13k and not documented).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from monitor.detect.findings import Finding, Link

# Slack limits (docs.slack.dev Block Kit reference; see tests/emulator/slack.py, which enforces them).
MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
MESSAGE_TEXT = 40_000
TOTAL_BUDGET = 11_000  # below the undocumented ~13k msg_blocks_too_long limit
FALLBACK_TEXT = 3000  # the notification preview; more is never shown
MAX_ITEMS = 20  # per list (files, authors, extra keys); the rest becomes "… and N more"
MAX_COMMITS = 10

SEVERITY_EMOJI = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_diamond:",
                  "low": ":large_blue_diamond:", "info": ":information_source:"}
KNOWN_KEYS = frozenset({"repo", "type", "ref", "old_sha", "new_sha", "commits", "new_authors", "files_added",
                        "files_removed", "files_modified", "rules", "reason"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # Cn: unassigned (in this Python's Unicode)
# Assigned, "printable", yet drawn as nothing: fillers, blank patterns, joiners, variation selectors.
_BLANK = frozenset([0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0, 0x1D159,
                    *range(0x180B, 0x1810), *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])
WJ = "\u2060"  # WORD JOINER: invisible, and not a word boundary for Slack's markup parser
_MARKUP = re.compile(r"[*_~`]|@(?=\w)|#(?=\w)|:(?=//)")
_URL_BAD = re.compile(r"[\s|<>\x00-\x1f\x7f]")


def clean(text: str) -> str:
    """Make invisible/control characters visible (`\\u202e`) so Hub text can't hide or fake anything."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for c in text:
        cat = unicodedata.category(c)
        if cat in _HIDDEN or (cat == "Zs" and c != " ") or ord(c) in _BLANK:
            out.append(_NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"))
        else:
            out.append(c)
    return "".join(out)


def inert(text: str) -> str:
    """Slack markup characters of (already cleaned) untrusted text -> shown literally, never markup."""
    return _MARKUP.sub(lambda m: WJ + m.group(0) + WJ, text)


_ESCAPE_SEQ = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~]?)"
                         r"|\x9b[0-?]*[ -/]*[@-~]")


def terminal(text: str) -> str:
    """Untrusted text for a terminal: escape sequences (CSI, OSC, DCS, ...) removed, every other control
    or invisible character made visible, so nothing can move the cursor, retitle or recolour."""
    return clean(_ESCAPE_SEQ.sub("", text))


def escape(text: str) -> str:
    """Slack's three control characters, and only those (docs: 'don't HTML-encode the entire text')."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def u16len(text: str) -> int:
    """Length as Slack's (JavaScript) validators likely count it: UTF-16 code units, the stricter count."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _cut(text: str, limit: int) -> str:
    n = 0
    for i, c in enumerate(text):
        n += 2 if ord(c) > 0xFFFF else 1
        if n > limit:
            return text[:i]
    return text


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (int, float, bool)):
        return str(value)
    try:
        return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):  # e.g. mixed-type dict keys
        return repr(value)


def fit(value: Any, limit: int) -> str:
    """Untrusted value -> escaped mrkdwn text of at most `limit` units, ending in '…' if cut."""
    raw = _as_str(value)[: limit + 1]  # each input char yields >= 1 output char
    text = inert(escape(clean(raw)))
    if u16len(text) <= limit:
        return text
    text = _cut(text, limit - 1)
    amp = text.rfind("&", len(text) - 4)
    if amp != -1 and ";" not in text[amp:]:  # don't leave half an entity ("&am")
        text = text[:amp]
    if len(text) >= 2 and text[-2] == WJ and text[-1] in "*_~`@#:":
        text = text[:-2]  # don't leave a marker without its closing joiner
    return text + "…"


def code(value: Any, limit: int = 300) -> str:
    """Untrusted value in a code span (paths, shas, names); a backtick in it can't end the span."""
    text = fit(_as_str(value).replace("`", "ˋ"), limit)
    return f"`{text}`" if text else "_(empty)_"


def _list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value in (None, "", {}) else [value]


def _bullets(title: str, lines: list[str], total: int, limit: int) -> str:
    """Title plus as many lines as fit in `limit`, then '… and N more' (N counts everything not shown)."""
    out, used = [title], u16len(title)
    for i, line in enumerate(lines):
        if used + 1 + u16len(line) + 30 > limit:
            break
        out.append(line)
        used += 1 + u16len(line)
    if total > len(out) - 1:
        out.append(f"… and {total - (len(out) - 1)} more")
    return "\n".join(out)


def _revision(ev: Mapping, limit: int) -> str | None:
    old, new = ev.get("old_sha"), ev.get("new_sha")
    if not old and not new:
        return None
    short = lambda s: code(_as_str(s)[:12]) if s else "_(none)_"  # noqa: E731
    text = f"*Revision:* {short(old)} → {short(new)}"
    for label, sha in (("old", old), ("new", new)):
        if sha:
            text += f"\n{label}: {code(sha, 100)}"
    return text


def _commits(ev: Mapping, limit: int) -> str | None:
    commits = _list(ev.get("commits"))
    if not commits:
        return None
    flagged = {_as_str(a) for a in _list(ev.get("new_authors"))}
    lines = []
    for c in commits[:MAX_COMMITS]:
        if not isinstance(c, Mapping):
            lines.append(f"• {fit(c, 300)}")
            continue
        authors = ", ".join((":warning: " if _as_str(a) in flagged else "") + fit(a, 80)
                            for a in _list(c.get("authors"))[:5])
        line = f"• {code(_as_str(c.get('sha'))[:10])} {fit(c.get('title'), 200)}"
        line += f" — {authors}" if authors else ""
        line += f" ({fit(c.get('date'), 40)})" if c.get("date") else ""
        lines.append(line)
    return _bullets(f"*Commits ({len(commits)}):*", lines, len(commits), limit)


def _authors(ev: Mapping, limit: int) -> str | None:
    authors = _list(ev.get("new_authors"))
    if not authors:
        return None
    lines = [f"• {code(a, 100)}" for a in authors[:MAX_ITEMS]]
    return _bullets(f"*:warning: New authors ({len(authors)}), never seen on this repo before:*",
                    lines, len(authors), limit)


def _files(key: str, title: str) -> Callable[[Mapping, int], str | None]:
    def render(ev: Mapping, limit: int) -> str | None:
        files = _list(ev.get(key))
        if not files:
            return None
        lines = [f"• {code(p, 300)}" for p in files[:MAX_ITEMS]]
        return _bullets(f"*{title} ({len(files)}):*", lines, len(files), limit)
    return render


def _rules(ev: Mapping, limit: int) -> str | None:
    rules = _list(ev.get("rules"))
    if not rules:
        return None
    lines = []
    for r in rules[:MAX_ITEMS]:
        if isinstance(r, Mapping):
            sev = f" ({fit(r.get('severity'), 20)})" if r.get("severity") else ""
            detail = f": {fit(r.get('detail'), 300)}" if r.get("detail") else ""
            lines.append(f"• *{fit(r.get('rule'), 100)}*{sev}{detail}")
        else:
            lines.append(f"• {fit(r, 300)}")
    return _bullets(f"*Rules fired ({len(rules)}):*", lines, len(rules), limit)


def _reason(ev: Mapping, limit: int) -> str | None:
    return f"*Reason:* {fit(ev['reason'], min(limit, 1500))}" if ev.get("reason") else None


def _extras(ev: Mapping, limit: int) -> str | None:
    keys = sorted((_as_str(k) for k in ev if _as_str(k) not in KNOWN_KEYS), key=str)
    if not keys:
        return None
    by_name = {_as_str(k): v for k, v in ev.items()}
    lines = [f"• *{fit(k, 60)}:* {fit(by_name[k], 300)}" for k in keys[:MAX_ITEMS]]
    return _bullets("*Details:*", lines, len(keys), limit)


# Priority order: what a responder needs first gets the space first.
_PARTS = (_revision, _rules, _files("files_added", "Files added"), _files("files_modified", "Files modified"),
          _files("files_removed", "Files removed"), _authors, _commits, _reason, _extras)


_URL_HOST = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d+)?(/|$)")


def safe_url(url: Any) -> bool:
    """Our own Hub links only: http(s), no characters that could end or split Slack's `<url|label>`."""
    return (isinstance(url, str) and _URL_HOST.match(url) is not None and len(url) <= 2000
            and not _URL_BAD.search(url))


def _links(links: tuple) -> str | None:
    parts = [f"<{escape(l.url)}|{fit(l.label, 80).replace('|', '¦') or 'link'}>"
             for l in links[:10] if isinstance(l, Link) and safe_url(l.url)]
    return " · ".join(parts) or None


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _fields(f: Finding, ev: Mapping) -> dict:
    fields = [f"*Severity*\n{SEVERITY_EMOJI.get(f.severity, '')} {f.severity.upper()}", f"*Kind*\n{code(f.kind, 100)}"]
    for key in ("repo", "type", "ref"):
        if ev.get(key):
            fields.append(f"*{key.capitalize()}*\n{code(ev[key], 300)}")
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": t, "verbatim": True} for t in fields]}


def limit_blocks(blocks: list[dict]) -> list[dict]:
    """Keep the first blocks and the trailing context when over Slack's 50-block limit."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    dropped = len(blocks) - (MAX_BLOCKS - 2)
    return blocks[: MAX_BLOCKS - 2] + [_section(f"_… {dropped} more sections omitted_"), blocks[-1]]


def slack_message(f: Finding) -> dict:
    """The Block Kit message for one finding (incoming-webhook payload)."""
    ev = f.evidence if isinstance(f.evidence, Mapping) else {}
    emoji = SEVERITY_EMOJI.get(f.severity, ":grey_question:")
    kind = re.sub(r"[^\w .:/-]", "?", _as_str(f.kind))  # plain_text: no markup, but keep it boring
    header = f"{emoji} {f.severity.upper()}: {kind}"
    header = header if u16len(header) <= HEADER_TEXT else _cut(header, HEADER_TEXT - 1) + "…"
    subject = fit(f.subject, 300) or "_(no subject)_"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _section(f"*{subject}*\n{fit(f.summary, 2000)}"),
        _fields(f, ev),
    ]
    tail = [_section(link_text)] if (link_text := _links(f.links)) else []
    tail.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"hubwatch · fingerprint {code(f.fingerprint, 80)}", "verbatim": True}]})
    budget = TOTAL_BUDGET - sum(u16len(json.dumps(b, ensure_ascii=False)) for b in blocks + tail)
    for part in _PARTS:
        if budget < 200:
            blocks.append(_section("_… more evidence omitted (message size limit)_"))
            break
        try:
            text = part(ev, min(SECTION_TEXT, budget - 100))
        except Exception as exc:  # a malformed evidence value must not cost us the whole alert
            text = f"_(evidence not renderable: {type(exc).__name__})_"
        if text:
            text = _cut(text, SECTION_TEXT)
            blocks.append(_section(text))
            budget -= u16len(text) + 80
    fallback = f"[{f.severity.upper()}] {kind} " + fit(f"{_as_str(f.subject)[:500]}: {_as_str(f.summary)}",
                                                       FALLBACK_TEXT - 200)
    return {"text": f"{emoji} {fallback}", "blocks": limit_blocks(blocks + tail),
            "unfurl_links": False, "unfurl_media": False}


def acknowledged_before_delivery(f: Finding, who: str) -> Finding:
    """The finding as its alert goes out after someone acknowledged it: same fingerprint, the
    summary opening with "acknowledged by WHO before delivery" (first, so no cap cuts it)."""
    marked = f"acknowledged by {who} before delivery"
    return replace(f, summary=f"({marked}) {f.summary}",
                   evidence={**f.evidence, "acknowledged_before_delivery_by": who})


def sent_at(now: datetime) -> str:
    """The `sent_at` stamp of a webhook body: UTC, ISO 8601 with `Z` (a naive `now` is UTC)."""
    stamp = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def json_payload(f: Finding, *, source: str = "hubwatch", now: datetime | None = None) -> dict:
    """Generic-webhook body: the finding as data; receivers dedup on `fingerprint` (at-least-once)."""
    payload = f.to_dict()
    payload["source"] = source
    payload["version"] = 1
    if now is not None:
        payload["sent_at"] = sent_at(now)
    return payload


# Generic webhook bounds. Full form: what a receiver normally gets; compact: what we retry with after
# a 413; minimal: no evidence lists at all. Each form says what it cut.
PAYLOAD_MAX_BYTES = 256_000
PAYLOAD_FORMS = (("full", 1000, 4000), ("compact", 50, 1000), ("minimal", 0, 500))  # (name, items, chars)


def _bound(value: Any, path: str, items: int, chars: int, cut: list[dict]) -> Any:
    """`value` with every list cut to `items` and every string to `chars`; each cut recorded in `cut`."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + "…"
    if isinstance(value, Mapping):
        keys = list(value)
        if len(keys) > max(items, 20):  # an evidence dict with 100k keys is a list in disguise
            cut.append({"path": path, "total": len(keys), "shown": max(items, 20)})
            keys = keys[:max(items, 20)]
        return {_as_str(k)[:200]: _bound(value[k], f"{path}.{_as_str(k)[:200]}", items, chars, cut) for k in keys}
    if isinstance(value, (list, tuple)):
        if len(value) > items:
            cut.append({"path": path, "total": len(value), "shown": items})
        return [_bound(v, f"{path}[{i}]", items, chars, cut) for i, v in enumerate(value[:items])]
    return value


def bounded_payloads(f: Finding, *, now: datetime | None = None,
                     max_bytes: int = PAYLOAD_MAX_BYTES) -> list[bytes]:
    """The webhook bodies to try in order: the full payload (lists cut so it fits `max_bytes`), then
    the compact and the minimal form, used when the receiver answers 413. A cut payload carries
    `truncated: [{path, total, shown}]` (and `form`), so the receiver knows what it did not get."""
    base = json_payload(f, now=now)
    out: list[bytes] = []
    for form, items, chars in PAYLOAD_FORMS:
        while True:
            cut: list[dict] = []
            payload = {k: (_bound(v, k, items, chars, cut) if k in ("evidence", "summary", "subject") else v)
                       for k, v in base.items()}
            if cut or form != "full":
                payload["form"] = form
            if cut:
                payload["truncated"] = cut[:100]
            body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
            if len(body) <= max_bytes or items == 0:
                break
            items, chars = items // 4, max(200, chars // 2)  # still too big: cut harder
        out.append(body)
    return out


def text_line(f: Finding) -> str:
    """`[SEVERITY] kind subject: summary (fingerprint)`; no raw control chars reach a terminal."""
    return (f"[{f.severity.upper()}] {clean(_as_str(f.kind))} {clean(_as_str(f.subject)[:500])}: "
            f"{clean(_as_str(f.summary)[:2000])} ({clean(_as_str(f.fingerprint))})")
