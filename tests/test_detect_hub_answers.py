"""detect/ and hub/parse on the answers the real Hub gives (shared/HUB_API.md): tables in, findings out."""

from __future__ import annotations

import pytest

from monitor.detect import identity
from monitor.detect import revisions as rv
from monitor.detect.identity import Identity
from monitor.detect.token import token_rejected
from monitor.hub import parse
from monitor.hub.models import RepoId, ScanIssue
from monitor.hub.session import api_quota

A, B = "a" * 40, "b" * 40
REPO = RepoId("model", "openai-community/gpt2")
LEGACY = "2022-03-02T23:29:04.000Z"
GPT2_ID = "621ffdc036468d709f17434d"


@pytest.mark.parametrize("before, last_commit, now, recreated", [
    # The legacy placeholder is later than a 2019 last commit: that proves nothing.
    (Identity(GPT2_ID, LEGACY), "2019-11-04T20:51:58.000Z", Identity(GPT2_ID, LEGACY), False),
    (Identity(None, None), "2019-11-04T20:51:58.000Z", Identity(None, LEGACY), False),
    (Identity(None, LEGACY), "2019-11-04T20:51:58Z", Identity(None, "2022-03-02T23:29:04Z"), False),
    # `_id` is authoritative: same object, whatever the dates say.
    (Identity(GPT2_ID, "2023-01-01T00:00:00.000Z"), "2022-06-01T00:00:00.000Z",
     Identity(GPT2_ID, "2023-01-01T00:00:00.000Z"), False),
    # A legacy repo deleted and re-created: new `_id`, a real creation date.
    (Identity(GPT2_ID, LEGACY), "2019-11-04T20:51:58.000Z",
     Identity("66d1c0a2e1f6a2b3c4d5e6f7", "2024-08-30T12:00:00.000Z"), True),
    # A path that now lands on another repo (runwayml/stable-diffusion-v1-5): another `_id`.
    (Identity("6329bd7a9d4d25ea2ff2a0bd", "2022-09-20T12:00:00.000Z"), "2023-05-01T00:00:00.000Z",
     Identity("66d1c0a2e1f6a2b3c4d5e6f7", "2024-08-30T12:00:00.000Z"), True),
    # Without `_id` on one side: a creation time that changed, or one after the last known commit.
    (Identity(None, LEGACY), "2021-01-01T00:00:00Z", Identity(None, "2026-01-01T00:00:00Z"), True),
    (Identity(None, None), "2025-01-01T00:00:00Z", Identity(GPT2_ID, "2026-01-01T00:00:00Z"), True),
    (Identity(None, None), "2025-01-01T00:00:00Z", Identity(None, "2024-01-01T00:00:00Z"), False),
])
def test_recreation_rule(before, last_commit, now, recreated):
    reason = identity.recreation(before, last_commit, now)
    assert (reason is not None) == recreated, reason


def test_legacy_placeholder_recognised_in_any_spelling_and_any_second_of_the_import_minute():
    assert identity.is_legacy_created(LEGACY) and identity.is_legacy_created("2022-03-02T23:29:04Z")
    # `:05` is what deepset/roberta-base-squad2 and 19 more recorded import-era repos report
    for t in ("2022-03-02T23:29:05.000Z", "2022-03-02T23:29:00Z", "2022-03-02T23:29:59.999Z"):
        assert identity.is_legacy_created(t), t
    for t in ("2022-03-02T23:28:59.999Z", "2022-03-02T23:30:00.000Z", None, "not a date"):
        assert not identity.is_legacy_created(t), t


@pytest.mark.parametrize("second", [4, 5, 59])
def test_any_import_second_later_than_the_commits_proves_nothing(second):
    created = f"2022-03-02T23:29:{second:02d}.000Z"
    assert identity.recreation(Identity(None, None), "2019-11-04T20:51:58.000Z", Identity(None, created)) is None
    # a placeholder read as :04 once and :05 later is not "creation time changed"
    assert identity.recreation(Identity(None, LEGACY), "2019-11-04T20:51:58Z", Identity(None, created)) is None
    assert identity.recreation(Identity(None, created), "2019-11-04T20:51:58Z",
                               Identity(None, "2024-08-30T12:00:00.000Z")) is not None


def _info(status):
    return parse.repo_info({"_id": GPT2_ID, "id": REPO.id, "sha": A, "securityRepoStatus": status})


@pytest.mark.parametrize("status, issues", [
    ({"scansDone": True, "filesWithIssues": []}, ()),
    ({"scansDone": False, "filesWithIssues": []}, None),  # not scanned yet: neither clean nor flagged
    ({"scansDone": False, "filesWithIssues": [{"path": "x.bin", "level": "unsafe"}]}, None),
    ({"scansDone": True,
      "filesWithIssues": [{"path": "b.pkl", "level": "caution"}, {"path": "a.bin", "level": "unsafe"}]},
     (ScanIssue("a.bin", "unsafe"), ScanIssue("b.pkl", "caution"))),
    ({"scansDone": True, "filesWithIssues": [{"path": "c.bin"}, {"path": "d.bin", "level": "weird"}]},
     (ScanIssue("c.bin", ""), ScanIssue("d.bin", "weird"))),  # kept as sent: detect/ judges the level
    (None, None),
])
def test_scan_status_parsing(status, issues):
    assert _info(status).scan_issues == issues


def test_scan_caution_is_medium_unsafe_high_and_level_is_in_the_fingerprint():
    caution = rv.scan_flagged(REPO, "h", A, [ScanIssue("model.bin", "caution")], {"model.bin": "blob1"})
    unsafe = rv.scan_flagged(REPO, "h", A, [ScanIssue("model.bin", "unsafe")], {"model.bin": "blob1"})
    both = rv.scan_flagged(REPO, "h", A, [ScanIssue("a.py", "caution"), ScanIssue("model.bin", "unsafe")])
    assert (caution.kind, caution.severity) == ("scan_flagged", "medium")
    assert unsafe.severity == "high" and both.severity == "high"
    assert caution.fingerprint != unsafe.fingerprint, "caution -> unsafe alerts again"
    assert "caution" in caution.summary and caution.evidence["levels"] == {"model.bin": "caution"}
    later = rv.scan_flagged(REPO, "h", B, [ScanIssue("model.bin", "caution")], {"model.bin": "blob1"})
    assert later.fingerprint == caution.fingerprint, "same file, same content, same level: one alert"


@pytest.mark.parametrize("level, expected", [
    ("unsafe", [("scan_flagged", "high")]),
    ("suspicious", [("scan_flagged", "high")]),
    ("caution", [("scan_flagged", "medium")]),
    ("safe", []),
    ("queued", []),
    ("unscanned", []),
    ("error", [("monitoring_degraded", "low")]),
    ("weird-new-level", [("scan_flagged", "medium")]),
    ("", [("scan_flagged", "medium")]),
])
def test_every_scan_level_means_what_the_hub_says(level, expected):
    found = rv.scan_findings(REPO, "h", A, [ScanIssue("pytorch_model.bin", level)], {"pytorch_model.bin": "b1"})
    assert [(f.kind, f.severity) for f in found] == expected
    for f in found:
        assert "pytorch_model.bin" in f.summary
        if level not in ("unsafe", "suspicious"):
            assert "unsafe" not in f.summary, f.summary
    if level in ("weird-new-level", ""):
        assert ("'weird-new-level'" if level else "(no level)") in found[0].summary
    if level == "error":
        assert "scan failed" in found[0].summary


def test_scan_levels_mixed_and_scan_failed_said_once():
    issues = [ScanIssue("a.bin", "safe"), ScanIssue("b.bin", "queued"), ScanIssue("c.pkl", "caution"),
              ScanIssue("d.bin", "error")]
    flagged, failed = rv.scan_findings(REPO, "h", A, issues)
    assert (flagged.severity, flagged.evidence["files_with_issues"]) == ("medium", ["c.pkl"])
    assert "1 not scanned yet" in flagged.summary and "a.bin" not in flagged.summary
    later = rv.scan_findings(REPO, "h", B, issues)[1]
    assert later.fingerprint == failed.fingerprint, "the same failed scan at a later commit: said once"


def test_disabled_is_critical_and_begins_with_disabled_by_the_hub():
    f = rv.disabled(RepoId("model", "ykilcher/gpt-4chan"), "https://huggingface.co", "2026-01-01T00:00:00Z")
    assert (f.kind, f.severity) == ("repo_unavailable", "critical")
    assert f.summary.startswith("disabled by the Hub") and "gated" not in f.summary


def test_history_unreadable_is_low_with_the_exact_summary():
    f = rv.history_unreadable(REPO, "h", "gated, no access for this token")
    assert (f.kind, f.severity, f.subject) == ("monitoring_degraded", "low", REPO.web_path)
    assert f.summary == "history not readable: gated, no access for this token"


def test_move_with_unreadable_content_says_so_and_keeps_readable_severity():
    mv = rv.Move("main", "branch", A, B, True)
    files = rv.FileDiff((), (), ("config.json",))
    plain = rv.describe_move(REPO, "h", mv, (), None, files, (), ())
    denied = rv.describe_move(REPO, "h", mv, (), None, files, (), (),
                              rv.NotRead("gated, no access for this token", True, ("config.json",)))
    assert denied.severity == plain.severity == "medium" and denied.kind == "ref_moved"
    assert denied.evidence["new_sha"] == B and denied.evidence["files_modified"] == ["config.json"]
    assert "config.json could not be read (gated, no access for this token)" in denied.summary
    assert denied.evidence["not_read"]["rules_not_checked"] == ["remote_code_config"]
    assert denied.evidence["not_read"]["history"] is True and "commits not readable" in denied.summary


@pytest.mark.parametrize("source", ["hub.token_file", "$HF_TOKEN"])
def test_token_rejected_names_the_source_and_the_endpoint(source):
    f = token_rejected("https://huggingface.co", source, "2026-01-01T00:00:00Z")
    assert (f.kind, f.severity, f.subject) == ("token_rejected", "high", "https://huggingface.co")
    assert source in f.summary
    assert f.fingerprint != token_rejected("https://huggingface.co", source, "2026-01-02T00:00:00Z").fingerprint


@pytest.mark.parametrize("header, quota", [
    ('"fixed window";"api";q=1000;w=300', 1000),
    ('"fixed window";"pages";q=100;w=300, "fixed window";"api";q=500;w=300', 500),
    ('"fixed window";"pages";q=100;w=300', None),
    ('"fixed window";"api";w=300', None),
    (None, None),
])
def test_advertised_api_quota(header, quota):
    assert api_quota(header) == quota


def test_a_sha_with_a_trailing_newline_is_no_sha():
    """`$` matches before a final newline: a Hub answer or a reference carrying "<sha>\\n" is not a sha."""
    from monitor.refs.model import Reference

    good = "a" * 40
    branch = {"name": "main", "ref": "refs/heads/main", "targetCommit": good + "\n"}
    with pytest.raises(ValueError):
        parse.refs({"branches": [branch], "tags": []}, "org/m")
    assert parse.refs({"branches": [dict(branch, targetCommit=good)], "tags": []}, "org/m").branch("main") == good
    assert Reference("org/m", "model", "a.py", 1, good, "from_pretrained").pinned is True
    assert Reference("org/m", "model", "a.py", 1, good + "\n", "from_pretrained").pinned is False
