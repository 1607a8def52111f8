"""render.py is pure: tables of hostile Hub text in, Slack-safe messages out."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.alerts.render import (MAX_BLOCKS, limit_blocks, json_payload, slack_message, terminal, text_line,
                                   u16len)
from monitor.detect.findings import Finding, Link
from tests.emulator.slack import (assert_literal, invisible_characters, literal_texts, mrkdwn_texts, shown_text,
                                  validate_message)

SHA_A, SHA_B = "a" * 40, "b" * 40
HUB = "https://huggingface.co/org/model"
NASTY = ["<!channel>", "<!here>", "<https://evil.example|click me>", "<@U123>", "a & b", "x > y"]
# issue 17: what Hub text must never do in Slack (mention, format, link), and a very long title
HOSTILE = ["<!channel>", "@here", "*x*", "_x_", "`x`", "<http://a|b>", "~x~", "```block```", "#general",
           "https://evil.example/x", "*b* _i_ ~s~", "T" * 5000]


def finding(summary="Revision changed", subject="org/model", links=(), **evidence) -> Finding:
    return Finding.make("revision_changed", "high", subject, summary, key=[subject, summary],
                        evidence=evidence, links=links)


def texts(msg: dict) -> list[str]:
    """Every string of a message: the fallback, then every text of the blocks."""
    return [msg["text"], *literal_texts(msg["blocks"]), *mrkdwn_texts(msg["blocks"])]


def display(el: dict) -> str:
    """A rich_text inline element as a reader sees it, marked up for these tests only."""
    kind, text = el["type"], el.get("text", "")
    style = el.get("style") or {}
    if kind == "emoji":
        return f":{el['name']}:"
    if kind == "link":
        return f"<{el['url']}|{text}>"
    if style.get("code"):
        return f"`{text}`"
    if style.get("bold"):
        return f"*{text}*"
    return text


def lines(msg: dict) -> list[str]:
    """Each rich_text section (list items prefixed with '• ') as displayed."""
    out: list[str] = []

    def section(sec, prefix=""):
        out.append(prefix + "".join(display(e) for e in sec["elements"]))

    for block in msg["blocks"]:
        for el in block.get("elements", []) if block["type"] == "rich_text" else []:
            if el["type"] == "rich_text_list":
                for sec in el["elements"]:
                    section(sec, "• ")
            else:
                section(el)
    return out


def part(msg: dict, title: str) -> str:
    """The displayed lines of the rich_text block whose first line starts with `title`."""
    for block in msg["blocks"]:
        if block["type"] != "rich_text":
            continue
        shown = lines({"blocks": [block]})
        if shown and shown[0].startswith(title):
            return "\n".join(shown)
    raise AssertionError(f"no block starting {title!r}")


EVIDENCE_SLOTS = [
    lambda s: finding(summary=s),
    lambda s: finding(subject=s),
    lambda s: finding(commits=[{"sha": SHA_B, "title": s, "authors": [s], "date": s}]),
    lambda s: finding(files_added=[s], files_removed=[s], files_modified=[s]),
    lambda s: finding(new_authors=[s], rules=[{"rule": s, "severity": s, "detail": s}]),
    lambda s: finding(reason=s, repo=s, ref=s, type=s, old_sha=s, new_sha=s),
    lambda s: finding(**{s: s, "other": s}),
]


@pytest.mark.parametrize("nasty", NASTY + HOSTILE)
@pytest.mark.parametrize("slot", range(len(EVIDENCE_SLOTS)))
def test_hub_text_arrives_literal_in_blocks_and_fallback(nasty, slot):
    """Literal by construction: byte-exact in a rich_text element (never in mrkdwn), in the fallback
    with markup parsing off and only &, <, > as entities, and not one invisible character added."""
    msg = slack_message(EVIDENCE_SLOTS[slot](nasty))
    assert validate_message(msg) is None
    shown = nasty if len(nasty) < 300 else nasty[:50]  # a 5,000-character title is cut, never altered
    assert_literal(msg, shown, in_fallback=slot < 2)
    assert mrkdwn_texts(msg["blocks"]) == [], "no mrkdwn anywhere in an alert"


def test_a_5000_character_title_arrives_literal_and_capped():
    msg = slack_message(finding(commits=[{"sha": SHA_B, "title": "*x* " * 1250, "authors": ["a"]}],
                                summary="_x_ " * 1250))
    assert validate_message(msg) is None and invisible_characters(msg) == []
    commit = part(msg, "*Commits (1):*")
    assert "*x* *x* *x*" in commit and "*x*… — `a`" in commit
    assert "_x_ _x_" in shown_text(msg).split("\n")[0]


NAMES = ["pytorch_model.bin", "risky_change", "openai-community/gpt2", "models/v1_final/__init__.py",
         "scan_flagged", SHA_B, "a" * 32]


def test_every_name_is_byte_exact_in_the_payload():
    f = Finding.make("risky_change", "high", "openai-community/gpt2", "pytorch_model.bin changed", key=1,
                     evidence={"repo": "openai-community/gpt2", "files_added": ["models/v1_final/__init__.py"],
                               "files_modified": ["pytorch_model.bin"], "old_sha": SHA_A, "new_sha": SHA_B,
                               "rules": [{"rule": "scan_flagged", "severity": "high", "detail": "x"}]})
    msg = slack_message(f)
    literal = literal_texts(msg["blocks"])
    for n in [*NAMES[:5], SHA_B, f.fingerprint]:
        assert n in literal, n
    for n in ("pytorch_model.bin", "risky_change", "openai-community/gpt2"):
        assert n in msg["text"], n
    assert invisible_characters(msg) == [] and "\u2060" not in json.dumps(msg)


@pytest.mark.parametrize("ch", ["\u3164", "\u2800", "\u115f", "\uffa0", "\u034f", "\u2066", "\u200f",
                                "\ufe0f", "\U000e0100", "\U000e0001", "\u0378"])  # last two: Cf, unassigned
def test_invisible_and_unassigned_code_points_are_made_visible(ch):
    msg = slack_message(finding(files_added=[f"gpt{ch}2.bin"], summary=f"by{ch}x", subject=f"org{ch}/m"))
    joined = "\n".join(texts(msg))
    assert ch not in joined
    assert f"\\u{ord(ch):04x}" in joined


def test_terminal_text_has_no_escape_sequences():
    hostile = "ok\x1b[2J\x1b]0;pwned\x07\x1b[31mred\x9b31m\x1bPdcs\x1b\\\x07\rback\u202e"
    out = terminal(hostile)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in out) and "\u202e" not in out
    assert out.startswith("ok") and "red" in out and "pwned" not in out


def test_ampersand_escaped_once_in_the_fallback_and_literal_in_the_blocks():
    msg = slack_message(finding(summary="R&D &amp; co"))
    assert "R&amp;D &amp;amp; co" in msg["text"]
    assert "R&D &amp; co" in literal_texts(msg["blocks"])


def test_invisible_and_bidi_characters_are_made_visible():
    msg = slack_message(finding(files_added=["evil\u202egnp.bin"], summary="a\nb\x1b[31m", new_authors=["a\u200bb"]))
    joined = "\n".join(texts(msg))
    assert "\u202e" not in joined and "\x1b" not in joined and "\u200b" not in joined
    assert "evil\\u202egnp.bin" in joined and "a\\nb\\x1b[31m" in joined


def test_commit_title_newline_cannot_fake_a_line():
    msg = slack_message(finding(commits=[{"sha": SHA_B, "title": "ok\n*Rules fired:* none", "authors": []}]))
    assert part(msg, "*Commits").count("\n") == 1


@pytest.mark.parametrize("field, index", [("summary", 1), ("subject", 0)])
def test_very_long_text_is_capped_with_ellipsis(field, index):
    msg = slack_message(finding(**{field: "x" * 100_000}))
    text = msg["blocks"][1]["elements"][index]["elements"][0]["text"]
    assert u16len(text) <= 3000 and text.endswith("…")
    assert validate_message(msg) is None


def test_truncation_never_cuts_an_entity_in_half():
    msg = slack_message(finding(summary="&" * 5000))
    assert msg["text"].endswith("&amp;…")


def test_long_kind_and_astral_characters_fit_the_header():
    f = Finding.make("k" * 400, "critical", "🦙" * 5000, "🦙" * 5000, key=1)
    msg = slack_message(f)
    assert u16len(msg["blocks"][0]["text"]["text"]) <= 150
    assert validate_message(msg) is None


def test_200_files_become_and_n_more_within_limits():
    files = [f"weights/part-{i:05d}.safetensors" for i in range(200)]
    msg = slack_message(finding(files_added=files, files_removed=files, files_modified=files,
                                new_authors=[f"user{i}" for i in range(200)],
                                commits=[{"sha": SHA_B, "title": f"c{i}", "authors": ["a"]} for i in range(200)]))
    added = part(msg, "*Files added (200)")
    assert added.endswith("… and 180 more")
    assert len(msg["blocks"]) <= MAX_BLOCKS
    assert len(json.dumps(msg["blocks"], ensure_ascii=False)) < 13_000  # Slack's undocumented msg_blocks_too_long
    assert validate_message(msg) is None


def test_huge_paths_shrink_the_list_but_count_what_is_hidden():
    msg = slack_message(finding(files_added=["p" * 2000 + str(i) for i in range(15)]))
    added = part(msg, "*Files added (15)")
    shown = added.count("\n• ")
    assert added.endswith(f"… and {15 - shown} more")
    assert validate_message(msg) is None


def test_over_50_blocks_fall_back_to_fewer():
    blocks = [{"type": "divider"}] * 70 + [{"type": "rich_text", "elements": []}]
    out = limit_blocks(blocks)
    assert len(out) == 50 and out[-1]["type"] == "rich_text"
    assert "23 more sections omitted" in lines({"blocks": [out[-2]]})[0]


def test_fallback_text_and_no_unfurling():
    msg = slack_message(finding(summary="Main moved"))
    assert msg["text"].startswith(":red_circle: [HIGH] revision_changed org/model: Main moved")
    assert msg["mrkdwn"] is False
    assert msg["unfurl_links"] is False and msg["unfurl_media"] is False


def test_evidence_is_rendered_exactly():
    msg = slack_message(finding(repo="org/model", old_sha=SHA_A, new_sha=SHA_B, new_authors=["mallory"],
                                commits=[{"sha": SHA_B, "title": "Update", "authors": ["mallory"], "date": "2025-01-02"}],
                                files_removed=["model.safetensors"], rules=[{"rule": "pickle", "severity": "high",
                                                                              "detail": "new pickle file"}],
                                downloads=12))
    joined = "\n".join(lines(msg))
    for expected in (f"`{SHA_A[:12]}` → `{SHA_B[:12]}`", f"old: `{SHA_A}`", f"new: `{SHA_B}`",
                     "`bbbbbbbbbb` Update — :warning: `mallory` (2025-01-02)",
                     "*Files removed (1):*\n• `model.safetensors`", "• `pickle` (high): new pickle file",
                     "• `downloads`: 12", "*\nRepo: *`org/model`"):
        assert expected in joined, expected
    assert lines({"blocks": [msg["blocks"][-1]]}) == [f"hubwatch · fingerprint `{msg_fp(msg)}`"]


def msg_fp(msg):
    return re.search(r"[0-9a-f]{32}", json.dumps(msg["blocks"][-1])).group(0)


def test_links_only_from_link_objects_and_only_safe_urls():
    good = Link("Commit", f"{HUB}/commit/{SHA_B}?a=1&b=2")
    bad = [Link("x", "https://evil|y"), Link("x", "https://a b"), Link("x", "javascript:alert(1)"),
           Link("x", "https://a>b"), Link("x", "https://a\nb")]
    msg = slack_message(finding(links=(good, *bad), url="https://evil.example", link="<https://evil|x>"))
    urls = [e["url"] for b in msg["blocks"] if b["type"] == "rich_text" for s in b["elements"]
            for e in s.get("elements", []) if e.get("type") == "link"]
    assert urls == [good.url]
    assert ": <https://evil|x>" in literal_texts(msg["blocks"])  # evidence is text, never a link


def test_link_label_is_literal():
    msg = slack_message(finding(links=(Link("a|<b>&", f"{HUB}/tree/main"),)))
    assert f"<{HUB}/tree/main|a|<b>&>" in lines(msg)


@pytest.mark.parametrize("evidence", [
    {"commits": "not a list", "files_added": 5, "rules": [1, None, {"rule": None}], "new_authors": {"a": 1}},
    {"commits": [None, 3, {"authors": "solo", "sha": 12}], "old_sha": 7, "reason": ["x"]},
    {"files_modified": [None, {"path": "a"}, ["b"]], "x": float("nan"), "y": None},
])
def test_unexpected_evidence_types_never_crash(evidence):
    assert validate_message(slack_message(finding(**evidence))) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=20), children, max_size=8),
    max_leaves=60)
evidence_keys = st.sampled_from(["repo", "type", "ref", "old_sha", "new_sha", "commits", "new_authors", "files_added",
                                 "files_removed", "files_modified", "rules", "reason"]) | st.text(max_size=30)
commit = st.fixed_dictionaries({"sha": st.text(max_size=50), "title": st.text(max_size=500),
                                "authors": st.lists(st.text(max_size=50), max_size=5), "date": st.text(max_size=30)})
evidence = st.dictionaries(evidence_keys, json_values | st.lists(commit, max_size=15), max_size=14)
links = st.lists(st.builds(Link, st.text(max_size=200), st.text(max_size=200) | st.just(f"{HUB}/tree/main")), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evidence=evidence, summary=st.text(max_size=4000), subject=st.text(max_size=400), links=links,
       severity=st.sampled_from(["info", "low", "medium", "high", "critical"]))
def test_random_findings_always_render_to_an_acceptable_message(evidence, summary, subject, links, severity):
    f = Finding(kind="revision_changed", severity=severity, subject=subject, summary=summary,
                evidence=evidence, links=tuple(links), fingerprint="f" * 32)
    msg = slack_message(f)
    assert validate_message(msg) is None
    json.dumps(msg).encode("utf-8")  # no lone surrogates: sendable
    assert mrkdwn_texts(msg["blocks"]) == [] and invisible_characters(msg) == []
    assert not re.search(r"[<>]", msg["text"]), "the fallback carries no raw control character"


def test_json_payload_is_the_finding_plus_envelope():
    f = finding(repo="org/model")
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    payload = json_payload(f, now=now)
    assert payload == {**f.to_dict(), "source": "hubwatch", "version": 1, "sent_at": "2025-01-02T01:04:05Z"}
    assert "sent_at" not in json_payload(f, source="x") and json_payload(f, source="x")["source"] == "x"
    assert Finding.from_dict(payload) == f


def test_text_line_is_one_safe_line():
    f = Finding.make("revision_changed", "critical", "org/m\x1b[2J", "line1\nline2\r\u202e", key=1)
    line = text_line(f)
    assert line == f"[CRITICAL] revision_changed org/m\\x1b[2J: line1\\nline2\\r\\u202e ({f.fingerprint})"
    assert "\n" not in line and "\x1b" not in line


def test_findings_command_prints_no_terminal_control_characters(tmp_path, capsys):
    from monitor.cli import main
    from monitor.store import Store

    (tmp_path / "config.toml").write_text('[hub]\nendpoint = "http://127.0.0.1:9"\n[state]\npath = "state.db"\n')
    hostile = finding(summary="moved\x1b[2J\x1b]0;owned\x07 \x1b[8mhidden\x1b[0m\x9b2J\u202eevil",
                      subject="org/\x1b[31mmodel")
    with Store.open(tmp_path / "state.db") as store:
        store.record("model:org/model", None, [hostile], ["stdout"], datetime.now(timezone.utc))
    assert main(["findings", "-c", str(tmp_path / "config.toml")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert not any(ord(c) < 0x20 and c != "\n" or 0x7f <= ord(c) < 0xa0 for c in out), repr(out)
    assert "\u202e" not in out and "org/model" in out and "moved" in out and "hidden" in out


# --- the Slack receiver holds rich_text to Slack's rules -------------------------------------------------------
def _rich(*elements):
    return {"text": "x", "blocks": [{"type": "rich_text", "elements": list(elements)}]}


def _sec(*inline):
    return {"type": "rich_text_section", "elements": list(inline)}


@pytest.mark.parametrize("message", [
    _rich(),                                                                      # no elements
    _rich(_sec()),                                                                # empty section
    _rich(_sec({"type": "text", "text": ""})),                                    # empty text
    _rich(_sec({"type": "text", "text": "x" * 3001})),                            # over the text limit
    _rich(_sec({"type": "text", "text": "x", "style": {"underline": True}})),     # no such style
    _rich(_sec({"type": "text", "text": "x", "style": {"bold": "yes"}})),         # styles are booleans
    _rich(_sec({"type": "mrkdwn", "text": "*x*"})),                               # not a rich text element
    _rich(_sec({"type": "link", "url": "javascript:alert(1)", "text": "x"})),     # http(s) links only
    _rich({"type": "rich_text_list", "style": "dots", "elements": [_sec({"type": "text", "text": "x"})]}),
    _rich({"type": "rich_text_list", "style": "bullet", "elements": [{"type": "text", "text": "x"}]}),
    _rich({"type": "rich_text_section", "elements": [{"type": "text", "text": "x"}], "verbatim": True}),
    _rich(*[_sec({"type": "text", "text": "x"})] * 101),                          # too many elements
])
def test_the_receiver_refuses_rich_text_slack_would_refuse(message):
    assert validate_message(message) == (400, "invalid_blocks")


def test_the_receiver_accepts_what_hubwatch_sends_in_every_shape():
    ok = _rich(_sec({"type": "text", "text": "a", "style": {"bold": True, "code": True}},
                    {"type": "emoji", "name": "warning"}, {"type": "link", "url": "https://h/x", "text": "l"}),
               {"type": "rich_text_list", "style": "bullet", "elements": [_sec({"type": "text", "text": "b"})]},
               {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "c"}]})
    assert validate_message(ok) is None


def test_the_digest_and_lookup_replies_carry_no_mrkdwn_and_no_invisible_character():
    from datetime import datetime, timezone

    from monitor.alerts.render_report import report_slack
    from monitor.detect.reports import DigestFacts, digest
    from monitor.http.slack_command import result_message
    from tests.test_http import make_result

    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    report = digest(DigestFacts(pins=2, unknown=0, unavailable=0, changes=1, new_lookalikes=1, open_findings=2,
                                open_by_severity={"critical": 2}, lookalike=None, pending=0), now, now)
    for msg in (report_slack(report), result_message(make_result("meta-IIama"))):
        assert validate_message(msg) is None
        assert mrkdwn_texts(msg["blocks"]) == [] and invisible_characters(msg) == [] and msg["mrkdwn"] is False


def test_evidence_lists_show_each_path_byte_exact():
    """A scan_flagged alert lists its files in the evidence details: each path is its own literal
    text, byte-exact (a JSON dump would show `"` and `\\` escaped), and a long list is capped with
    the rest counted."""
    from monitor.detect.revisions import scan_findings
    from monitor.hub.models import RepoId, ScanIssue

    paths = [f"w{i}.bin" for i in range(5)] + ['we"ird\\name_x.bin', "dir/pytorch_model.bin"]
    issues = [ScanIssue(p, "unsafe") for p in paths]
    (f,) = scan_findings(RepoId("model", "org/model"), "https://huggingface.co", SHA_A, issues)
    msg = slack_message(f)
    assert validate_message(msg) is None and invisible_characters(msg) == []
    literal = literal_texts(msg["blocks"])
    for p in paths:
        assert p in literal, p
    many = slack_message(finding(files_with_issues=[f"dir/file_{i:03d}.bin" for i in range(300)]))
    assert validate_message(many) is None
    shown = [s for s in literal_texts(many["blocks"]) if s.startswith("dir/file_")]
    assert 5 <= len(shown) < 300 and any(s.startswith(f" … and {300 - len(shown)} more") for s in literal_texts(many["blocks"]))
    reasons = slack_message(finding(reasons=["imitates EleutherAI (omission; similarity 0.90)", "few followers (0)"]))
    assert "imitates EleutherAI (omission; similarity 0.90)" in literal_texts(reasons["blocks"])
