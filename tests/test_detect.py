"""detect/ is pure: plain tables in, findings out."""

from __future__ import annotations

import pytest

from monitor.detect import revisions as rv
from monitor.detect.findings import Finding, fingerprint, max_severity
from monitor.detect.risk import assess, remote_code_entries
from monitor.detect.state import RepoState
from monitor.hub.models import Commit, RepoId, ScanIssue

A, B, C = "a" * 40, "b" * 40, "c" * 40
REPO = RepoId("model", "org/model")


@pytest.mark.parametrize("added, removed, modified, configs, rules, worst", [
    (["pytorch_model.bin"], [], [], None, {"pickle_file_changed"}, "high"),
    ([], [], ["weights/model.ckpt"], None, {"pickle_file_changed"}, "high"),
    (["x.PKL"], [], [], None, {"pickle_file_changed"}, "high"),
    (["modeling_evil.py"], [], [], None, {"code_file_changed"}, "high"),
    (["run.sh", "lib.so"], [], [], None, {"code_file_changed"}, "high"),
    (["pytorch_model.bin"], ["model.safetensors"], [], None,
     {"safetensors_replaced_by_pickle", "pickle_file_changed"}, "critical"),
    ([], [], ["config.json"], {"config.json": ('{"a":1}', '{"auto_map":{"AutoModel":"m.M"}}')},
     {"remote_code_config"}, "critical"),
    (["README.md", "model.safetensors"], ["old.safetensors"], ["tokenizer.json"], None, set(), None),
    ([], [], ["config.json"], {"config.json": ('{"auto_map":{"A":"m.M"}}', '{"auto_map":{"A":"m.M"},"x":2}')},
     set(), None),
    ([], [], ["config.json"], {"config.json": ("{}", "not json")}, set(), None),
])
def test_risk_rules(added, removed, modified, configs, rules, worst):
    hits = assess(added, removed, modified, configs)
    assert {h.rule for h in hits} == rules
    if worst:
        assert max_severity(*(h.severity for h in hits)) == worst


def test_remote_code_entries_tolerates_garbage():
    assert remote_code_entries(None) == {}
    assert remote_code_entries("[1,2]") == {}
    assert remote_code_entries('{"custom_pipelines": {"x": 1}}') == {"custom_pipelines": {"x": 1}}


def test_find_moves_tracks_branches_and_every_tag():
    old_b, old_t = {"main": A, "dev": A}, {"v1": A, "v2": B}
    new_b, new_t = {"main": B, "dev": C}, {"v1": C, "v3": A}
    moves = rv.find_moves(old_b, old_t, new_b, new_t, {"main"})
    assert [(m.ref, m.ref_type, m.old, m.new, m.tracked) for m in moves] == [
        ("main", "branch", A, B, True),  # dev is untracked: not a move
        ("v1", "tag", A, C, False),
        ("v2", "tag", B, None, False),   # deleted tag; new tag v3 is not a move
    ]


def test_diff_files():
    d = rv.diff_files({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "d": "4"})
    assert (d.added, d.removed, d.modified) == (("d",), ("c",), ("b",))
    assert rv.diff_files(None, {"a": "1"}) is None


def test_describe_move_fast_forward_and_new_author():
    commits = [Commit(B, "Update <!channel>", ("mallory",), "2026-01-01T00:00:00Z")]
    f = rv.describe_move(REPO, "https://hub", rv.Move("main", "branch", A, B, True), commits, True,
                         rv.FileDiff(("x.txt",), (), ()), (), ["alice"])
    assert f.kind == "ref_moved" and f.severity == "medium"
    assert f.evidence["new_authors"] == ["mallory"]
    assert f.evidence["old_sha"] == A and f.evidence["new_sha"] == B
    assert f.evidence["commits"][0]["title"] == "Update <!channel>"
    assert [l.url for l in f.links] == ["https://hub/org/model/commit/" + B, "https://hub/org/model/commits/" + B,
                                        "https://hub/org/model/tree/" + B]
    assert "first-time author" in f.summary


def test_describe_move_force_push_and_risk():
    hits = assess(["evil.py"], [], [])
    f = rv.describe_move(REPO, "https://hub", rv.Move("main", "branch", A, B, True), [], False, None, hits, [])
    assert f.kind == "risky_change" and f.severity == "high"
    assert "force-push" in f.summary and f.evidence["fast_forward"] is False
    assert "files" in f.evidence  # unknown file list is said, not hidden


def test_tag_moves_are_high_and_dataset_links():
    ds = RepoId("dataset", "org/data")
    f = rv.describe_move(ds, "https://hub", rv.Move("v1", "tag", A, None, False), [], None, None, (), [])
    assert f.kind == "tag_moved" and f.severity == "high" and "deleted" in f.summary
    assert f.subject == "datasets/org/data"


def test_fingerprints_are_stable_and_distinct():
    m1 = rv.Move("main", "branch", A, B, True)
    f1 = rv.describe_move(REPO, "h", m1, [], True, None, (), [])
    f2 = rv.describe_move(REPO, "h", m1, [Commit(B, "t", ("x",), None)], True, None, (), [])
    f3 = rv.describe_move(REPO, "h", rv.Move("main", "branch", B, C, True), [], True, None, (), [])
    assert f1.fingerprint == f2.fingerprint != f3.fingerprint
    assert fingerprint("k", "Org/Repo", 1) == fingerprint("k", "org/repo", 1)
    u1 = rv.unavailable(REPO, "h", "gone", "2026-01-01T00:00:00Z", 2)
    u2 = rv.unavailable(REPO, "h", "gone", "2026-01-01T00:00:00Z", 3)
    assert u1.fingerprint == u2.fingerprint  # the same episode alerts once however long it lasts


def test_finding_roundtrip_and_validation():
    f = rv.scan_flagged(REPO, "h", A, [ScanIssue("pytorch_model.bin", "unsafe")])
    assert Finding.from_dict(f.to_dict()) == f
    with pytest.raises(ValueError):
        Finding("k", "urgent", "s", "x", {}, (), "fp")


def test_state_json_roundtrip_and_tolerance():
    st = RepoState(baseline=True, branches={"main": A}, authors=("a",), scan_issues=("x.bin",))
    assert RepoState.from_json(st.to_json()) == st
    assert RepoState.from_json('{"baseline": true, "from_the_future": 1}').baseline is True
    assert RepoState.from_json("not json") == RepoState()
    assert RepoState.from_json(None) == RepoState()


@pytest.mark.parametrize("text", ['{"baseline": true, "branches": 5}', '{"authors": "abc"}',
                                  '{"manifests": {"a": 1}}', '{"reachable": {"x": "yes"}}',
                                  '{"checked_at": 7}', '{"unavailable_streak": "2"}', '{"tags": {"v1": null}}'])
def test_state_with_wrong_types_starts_fresh(text):
    assert RepoState.from_json(text) == RepoState()
