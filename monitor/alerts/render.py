"""Finding -> Slack Block Kit message, generic JSON payload, one stdout line. PURE (no I/O, no clock).

Why so defensive: apart from `kind`, `severity`, `fingerprint` and `links`, everything in a finding
comes from the Hub, i.e. from the people we are watching (repo names, commit titles, author names,
file paths). Slack would parse it as markup in any `mrkdwn` text: `<!channel>` pings everyone,
`<https://evil|docs>` disguises a link, `*URGENT*`, `_x_`, `~x~` and backticks format, and Slack has
no escape for those four. So Hub text never goes into mrkdwn: it is inert *by construction* —
every block that carries it is a Block Kit `rich_text` block, whose `text` elements are literal
(no mrkdwn, no mentions, no links; a style such as `code` is a flag beside the text, not a marker
inside it). Names, paths, kinds, shas and fingerprints therefore reach Slack byte-exact: copied
from Slack they match `grep`, `hubwatch findings --kind` and Slack's own search. The top-level
`text` (the notification and screen-reader fallback) is sent with the message's `mrkdwn: false`,
Slack's documented switch that turns markup parsing off for it, and with only `&`, `<`, `>`
written as `&amp;`, `&lt;`, `&gt;` (the three control characters Slack's "Formatting text for app
surfaces" says to escape, and decodes back), so a name in it is exact after Slack's decoding.
No invisible characters are ever added; invisible/bidi characters *in* Hub text are made visible
(`\u202e`), so a malicious file name cannot look harmless. Every text is capped to Slack's limits
(an oversize field makes Slack reject the *whole* alert with `invalid_blocks`), and the whole
message stays under ~11k characters because Slack also rejects messages whose blocks are too long
in total (`msg_blocks_too_long`, observed at ~13k and not documented). docs/alerts.md states the rule.
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


def plain(value: Any, limit: int) -> str:
    """Untrusted value -> literal text (invisible characters made visible) of at most `limit` UTF-16
    units, ending in '…' if cut. For rich_text elements and plain_text: nothing else is changed."""
    text = clean(_as_str(value)[: limit + 1])  # each input char yields >= 1 output char
    return text if u16len(text) <= limit else _cut(text, limit - 1) + "…"


def fit(value: Any, limit: int) -> str:
    """Untrusted value -> text for a `mrkdwn` field sent with markup parsing off (the top-level `text`
    with `mrkdwn: false`) or inside a code span: `&`, `<`, `>` escaped (Slack decodes them back), at
    most `limit` units, ending in '…' if cut, never half an entity."""
    raw = _as_str(value)[: limit + 1]
    text = escape(clean(raw))
    if u16len(text) <= limit:
        return text
    text = _cut(text, limit - 1)
    amp = text.rfind("&", len(text) - 4)
    if amp != -1 and ";" not in text[amp:]:  # don't leave half an entity ("&am")
        text = text[:amp]
    return text + "…"


def code(value: Any, limit: int = 300) -> str:
    """Untrusted value in a mrkdwn code span (Slack command replies): a backtick, which would end the
    span, is replaced visibly by `ˋ` (U+02CB); everything else is shown as is."""
    text = fit(_as_str(value).replace("`", "ˋ"), limit)
    return f"`{text}`" if text else "(empty)"


# --- rich_text: literal by construction -----------------------------------------------------------------
def t(text: str, **style: bool) -> dict:
    """A rich_text `text` element: literal text; `style` flags (bold, italic, strike, code) sit beside it."""
    element: dict[str, Any] = {"type": "text", "text": text}
    if style:
        element["style"] = {k: True for k, v in style.items() if v}
    return element


def name(value: Any, limit: int = 300) -> dict:
    """A Hub name (repo, path, kind, sha, author) as a code-styled literal: byte-exact, nothing replaced."""
    return t(plain(value, limit) or "(empty)", code=True)


def line(*elements: dict) -> dict:
    """A rich_text section; empty text elements dropped (Slack refuses them), "(empty)" if none is left."""
    kept = [e for e in elements if e.get("text", "x")]
    return {"type": "rich_text_section", "elements": kept or [t("(empty)", italic=True)]}


def rich(*elements: dict) -> dict:
    """A rich_text block of sections and lists."""
    return {"type": "rich_text", "elements": list(elements)}


def _emoji(shortcode: str) -> dict:
    return {"type": "emoji", "name": shortcode.strip(":")}


def _list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value in (None, "", {}) else [value]


def _size(elements: list[dict]) -> int:
    return sum(u16len(e.get("text", "")) + 8 for e in elements)


def _bullets(title: list[dict], items: list[list[dict]], total: int, limit: int) -> list[dict]:
    """Title line, then as many bullet items as fit in `limit`, then '… and N more' (N counts
    everything not shown)."""
    used, shown = _size(title), []
    for item in items:
        if used + _size(item) + 30 > limit:
            break
        shown.append(line(*item))
        used += _size(item)
    out = [line(*title)]
    if shown:
        out.append({"type": "rich_text_list", "style": "bullet", "elements": shown})
    if total > len(shown):
        out.append(line(t(f"… and {total - len(shown)} more", italic=True)))
    return out


def _revision(ev: Mapping, limit: int) -> list[dict] | None:
    old, new = ev.get("old_sha"), ev.get("new_sha")
    if not old and not new:
        return None
    short = lambda s: name(_as_str(s)[:12]) if s else t("(none)", italic=True)  # noqa: E731
    parts = [t("Revision: ", bold=True), short(old), t(" → "), short(new)]
    for label, sha in (("old", old), ("new", new)):
        if sha:
            parts += [t(f"\n{label}: "), name(sha, 100)]
    return [line(*parts)]


def _commits(ev: Mapping, limit: int) -> list[dict] | None:
    commits = _list(ev.get("commits"))
    if not commits:
        return None
    flagged = {_as_str(a) for a in _list(ev.get("new_authors"))}
    items = []
    for c in commits[:MAX_COMMITS]:
        if not isinstance(c, Mapping):
            items.append([t(plain(c, 300))])
            continue
        item = [name(_as_str(c.get("sha"))[:10]), t(" " + plain(c.get("title"), 200))]
        authors = _list(c.get("authors"))[:5]
        for i, a in enumerate(authors):
            item.append(t(" — " if i == 0 else ", "))
            if _as_str(a) in flagged:
                item.append(_emoji(":warning:"))
                item.append(t(" "))
            item.append(name(a, 80))
        if c.get("date"):
            item.append(t(f" ({plain(c.get('date'), 40)})"))
        items.append(item)
    return _bullets([t(f"Commits ({len(commits)}):", bold=True)], items, len(commits), limit)


def _authors(ev: Mapping, limit: int) -> list[dict] | None:
    authors = _list(ev.get("new_authors"))
    if not authors:
        return None
    return _bullets([_emoji(":warning:"), t(f" New authors ({len(authors)}), never seen on this repo before:",
                                            bold=True)],
                    [[name(a, 100)] for a in authors[:MAX_ITEMS]], len(authors), limit)


def _files(key: str, title: str) -> Callable[[Mapping, int], list[dict] | None]:
    def render(ev: Mapping, limit: int) -> list[dict] | None:
        files = _list(ev.get(key))
        if not files:
            return None
        return _bullets([t(f"{title} ({len(files)}):", bold=True)], [[name(p, 300)] for p in files[:MAX_ITEMS]],
                        len(files), limit)
    return render


def _rules(ev: Mapping, limit: int) -> list[dict] | None:
    rules = _list(ev.get("rules"))
    if not rules:
        return None
    items = []
    for r in rules[:MAX_ITEMS]:
        if isinstance(r, Mapping):
            item = [name(r.get("rule"), 100)]
            if r.get("severity"):
                item.append(t(f" ({plain(r.get('severity'), 20)})"))
            if r.get("detail"):
                item.append(t(": " + plain(r.get("detail"), 300)))
            items.append(item)
        else:
            items.append([t(plain(r, 300))])
    return _bullets([t(f"Rules fired ({len(rules)}):", bold=True)], items, len(rules), limit)


def _reason(ev: Mapping, limit: int) -> list[dict] | None:
    if not ev.get("reason"):
        return None
    return [line(t("Reason: ", bold=True), t(plain(ev["reason"], min(limit, 1500)) or "(empty)"))]


EXTRA_TEXT = 600  # characters of one evidence value shown beside its key


def _extra_value(value: Any) -> list[dict]:
    """An evidence value beside its key. A list of strings (file paths, copied repos, reasons) is
    shown item by item, each literal and byte-exact (a JSON dump would show a `"` or `\\` in a
    path escaped): a name code-styled, a sentence as text; a flat mapping (path -> scan level) as
    `key value` pairs alike; anything else as its JSON text. At most EXTRA_TEXT characters, then
    "… and N more"."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        pairs = [(v, None) for v in value]
    elif isinstance(value, Mapping) and value and all(isinstance(v, (str, int, float, bool)) for v in value.values()):
        pairs = [(_as_str(k), v) for k, v in value.items()]
    else:
        return [t(": " + (plain(value, 300) or "(empty)"))]
    out, used = [t(": ")], 0
    for i, (item, beside) in enumerate(pairs[:MAX_ITEMS]):
        shown = [name(item, 200) if " " not in item else t(plain(item, 200))]
        if beside is not None:
            shown.append(t(" " + (plain(beside, 60) or "(empty)")))
        size = sum(u16len(e["text"]) for e in shown)
        if i and used + size > EXTRA_TEXT:
            break
        out += [t(" · ")] * (i > 0) + shown
        used += size
    else:
        i = len(pairs[:MAX_ITEMS])
    if len(pairs) > i:
        out.append(t(f" … and {len(pairs) - i} more", italic=True))
    return out


def _extras(ev: Mapping, limit: int) -> list[dict] | None:
    keys = sorted((_as_str(k) for k in ev if _as_str(k) not in KNOWN_KEYS), key=str)
    if not keys:
        return None
    by_name = {_as_str(k): v for k, v in ev.items()}
    items = [[name(k, 60), *_extra_value(by_name[k])] for k in keys[:MAX_ITEMS]]
    return _bullets([t("Details:", bold=True)], items, len(keys), limit)


# Priority order: what a responder needs first gets the space first.
_PARTS = (_revision, _rules, _files("files_added", "Files added"), _files("files_modified", "Files modified"),
          _files("files_removed", "Files removed"), _authors, _commits, _reason, _extras)


_URL_HOST = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d+)?(/|$)")


def safe_url(url: Any) -> bool:
    """Our own Hub links only: http(s), no whitespace, quotes of markup or control characters."""
    return (isinstance(url, str) and _URL_HOST.match(url) is not None and len(url) <= 2000
            and not _URL_BAD.search(url))


def _links(links: tuple) -> dict | None:
    elements: list[dict] = []
    for l in links[:10]:
        if isinstance(l, Link) and safe_url(l.url):
            if elements:
                elements.append(t(" · "))
            elements.append({"type": "link", "url": l.url, "text": plain(l.label, 80) or "link"})
    return rich(line(*elements)) if elements else None


def _fields(f: Finding, ev: Mapping) -> dict:
    parts = [t("Severity: ", bold=True), _emoji(SEVERITY_EMOJI.get(f.severity, ":grey_question:")),
             t(" " + plain(f.severity, 20).upper() + "   "), t("Kind: ", bold=True), name(f.kind, 100)]
    for key in ("repo", "type", "ref"):
        if ev.get(key):
            parts += [t(f"\n{key.capitalize()}: ", bold=True), name(ev[key], 300)]
    return rich(line(*parts))


def note(text: str) -> dict:
    """A short line of ours (no Hub text) as its own block."""
    return rich(line(t(text, italic=True)))


def limit_blocks(blocks: list[dict]) -> list[dict]:
    """Keep the first blocks and the trailing one (the fingerprint) when over Slack's 50-block limit."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    dropped = len(blocks) - (MAX_BLOCKS - 2)
    return blocks[: MAX_BLOCKS - 2] + [note(f"… {dropped} more sections omitted"), blocks[-1]]


def _block_size(block: dict) -> int:
    return u16len(json.dumps(block, ensure_ascii=False))


def fallback_text(*parts: Any, limit: int = FALLBACK_TEXT) -> str:
    """The top-level `text`: sent with `mrkdwn: false`, so only &, < and > are written as entities."""
    return fit(" ".join(_as_str(p) for p in parts), limit)


def slack_message(f: Finding) -> dict:
    """The Block Kit message for one finding (incoming-webhook payload)."""
    ev = f.evidence if isinstance(f.evidence, Mapping) else {}
    emoji = SEVERITY_EMOJI.get(f.severity, ":grey_question:")
    kind = plain(f.kind, 100)
    header = f"{emoji} {plain(f.severity, 20).upper()}: {kind}"
    header = header if u16len(header) <= HEADER_TEXT else _cut(header, HEADER_TEXT - 1) + "…"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        rich(line(t(plain(f.subject, 300) or "(no subject)", bold=True)),
             line(t(plain(f.summary, 2000) or "(no summary)"))),
        _fields(f, ev),
    ]
    tail = [links] if (links := _links(f.links)) else []
    tail.append(rich(line(t("hubwatch · fingerprint "), name(f.fingerprint, 80))))
    budget = TOTAL_BUDGET - sum(_block_size(b) for b in blocks + tail)
    for part in _PARTS:
        if budget < 300:
            blocks.append(note("… more evidence omitted (message size limit)"))
            break
        try:
            elements = part(ev, min(SECTION_TEXT, budget - 200))
        except Exception as exc:  # a malformed evidence value must not cost us the whole alert
            elements = [line(t(f"(evidence not renderable: {type(exc).__name__})", italic=True))]
        if elements:
            block = rich(*elements)
            blocks.append(block)
            budget -= _block_size(block)
    text = fallback_text(f"[{f.severity.upper()}] {kind} {_as_str(f.subject)[:500]}: {_as_str(f.summary)}",
                         limit=FALLBACK_TEXT - 50)
    return {"text": f"{emoji} {text}", "mrkdwn": False, "blocks": limit_blocks(blocks + tail),
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
