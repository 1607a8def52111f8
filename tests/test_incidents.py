"""One incident, one alert (issue 17 point 2): a copy held by a namespace that imitates the same
protected name belongs to that namespace's `lookalike` finding; `repo_clone` is for copies in
namespaces that imitate nothing; the digest counts incidents. Through the CLI (`once`, `findings`,
`digest`) against the Hub emulator and the Slack receiver, plus the pure rules."""

from __future__ import annotations

import pytest

from monitor.detect import incidents
from monitor.detect.clones import CloneMatch
from monitor.detect.findings import Finding
from monitor.detect.lookalike_risk import Verdict
from tests.pins_env import PinsEnv
from tests.test_lookalike_discovery import now_iso

CONFIG = ('[lookalike]\nprotected = ["EleutherAI"]\nevery = "1h"\nprobe_budget = 200\n'
          '[limits]\nhub_requests_per_5min = 1000000\n')


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, slack)
    hub.rate_limit(1_000_000)
    e.extra = CONFIG
    hub.add_org("EleutherAI", fullname="EleutherAI", verified=True, followers=5000, created_at=now_iso(2000))
    hub.add_repo("EleutherAI/gpt-j-6b", files={"config.json": "{}"}, downloads=800, created_at=now_iso(1500))
    hub.add_repo("EleutherAI/pythia-1b", files={"config.json": "{}"}, downloads=700, created_at=now_iso(1400))
    return e


def alerts_about(slack, name: str) -> list[dict]:
    return [m for m in slack.messages if name in m["text"]]


def test_poisongpt_impostor_holding_a_copy_is_one_alert(env, hub, slack):
    """PoisonGPT: `EleuterAI` (one letter dropped) holding `gpt-j-6B`. One lookalike alert, naming the
    copy; no repo_clone; later cycles add nothing."""
    hub.add_org("EleuterAI", fullname="EleutherAI", created_at=now_iso(5), followers=1)
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"x"}, created_at=now_iso(4))
    for _ in range(3):
        env.once()
    found = env.findings()
    assert [f["kind"] for f in found] == ["lookalike"], found
    (f,) = found
    assert f["severity"] == "critical" and f["subject"] == "EleuterAI"
    assert "gpt-j-6B" in f["evidence"]["copied_repos"] and "gpt-j-6B" in f["summary"]
    assert len(alerts_about(slack, "EleuterAI")) == 1


def test_a_copy_appearing_later_re_alerts_once_naming_the_copy(env, hub, slack):
    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(5), followers=1)
    hub.add_repo("EleuterAI/hello", files={"README.md": "hi"}, created_at=now_iso(5))  # the feed finds it
    env.once()
    (first,) = env.findings()
    assert first["kind"] == "lookalike" and first["severity"] == "high" and not first["evidence"]["copied_repos"]
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"x"}, created_at=now_iso(1))
    env.once()
    env.once()
    found = env.findings()
    assert [(f["kind"], f["severity"]) for f in found] == [("lookalike", "high"), ("lookalike", "critical")]
    assert "gpt-j-6B" in found[1]["summary"] and found[1]["evidence"]["copied_repos"] == ["gpt-j-6B"]
    assert len(alerts_about(slack, "EleuterAI")) == 2, "the first alert, then the rise once"
    hub.add_repo("EleuterAI/pythia-1b", files={"pytorch_model.bin": b"x"}, created_at=now_iso(0))
    env.once()
    assert len(env.findings()) == 2 and len(alerts_about(slack, "EleuterAI")) == 2, "no rise, no alert"


def test_a_dataset_copy_is_folded_in_too(env, hub, slack):
    """The look-alike assessment lists models only: the clone watch brings the dataset copy in."""
    hub.add_repo("EleutherAI/pile", type="dataset", files={"a.jsonl": "{}"}, downloads=900, created_at=now_iso(1500))
    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(500), followers=1)
    hub.add_repo("EleuterAI/pile", type="dataset", files={"a.jsonl": "{}"}, created_at=now_iso(1))
    for _ in range(3):
        env.once()
    found = env.findings()
    assert [f["kind"] for f in found if f["kind"] == "repo_clone"] == []
    last = found[-1]
    assert last["kind"] == "lookalike" and last["severity"] == "critical" and "pile" in last["evidence"]["copied_repos"]
    assert any("EleuterAI/pile" in r for r in last["evidence"]["reasons"])


def test_a_copy_in_a_namespace_that_imitates_nothing_is_a_repo_clone(env, hub, slack):
    hub.add_org("quiet-lab", fullname="Quiet Lab", created_at=now_iso(5), followers=1)
    hub.add_repo("quiet-lab/gpt-j-6B", files={"pytorch_model.bin": b"x"}, created_at=now_iso(4))
    env.once()
    env.once()
    assert [(f["kind"], f["subject"]) for f in env.findings()] == [("repo_clone", "quiet-lab/gpt-j-6B")]
    assert len(alerts_about(slack, "quiet-lab/gpt-j-6B")) == 1


def test_the_digest_counts_incidents(env, hub, slack):
    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(5), followers=1)
    hub.add_repo("EleuterAI/hello", files={"README.md": "hi"}, created_at=now_iso(5))
    env.once()
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"x"}, created_at=now_iso(1))
    hub.add_org("quiet-lab", fullname="Quiet Lab", created_at=now_iso(5), followers=1)
    hub.add_repo("quiet-lab/gpt-j-6B", files={"pytorch_model.bin": b"x"}, created_at=now_iso(4))
    env.once()
    assert len(env.findings()) == 3, "the look-alike, its rise, and the clone elsewhere"
    r = env.run("digest")
    assert r.code == 0, r
    text = slack.messages[-1]["text"]
    assert "new look-alikes: 1" in text, "one namespace, one incident"
    assert "open findings (not acknowledged): 2 (2 critical)" in text, "the look-alike (with its rise) and the clone"


# --- the pure rules ----------------------------------------------------------------------------------------------
def _f(kind, subject, severity="high", **evidence) -> Finding:
    return Finding.make(kind, severity, subject, "s", key=[subject, severity], evidence=evidence)


def test_copy_joins_the_lookalike_only_of_the_same_protected_name():
    m = CloneMatch("EleuterAI/gpt-j-6B", "EleutherAI/gpt-j-6b", ())
    assert incidents.copy_joins_lookalike(m, ["eleutherai"])
    assert not incidents.copy_joins_lookalike(m, ["meta-llama"]) and not incidents.copy_joins_lookalike(m, [])


def test_fold_copies_raises_and_names():
    v = Verdict("high", ("imitates EleutherAI",), ())
    exact = incidents.fold_copies_into_lookalike(v, [CloneMatch("EleuterAI/gpt-j-6B", "EleutherAI/gpt-j-6b", ())])
    assert exact.risk == "critical" and exact.copied_repos == ("gpt-j-6B",)
    assert "holds EleuterAI/gpt-j-6B, a copy of EleutherAI/gpt-j-6b" in exact.reasons
    gguf = incidents.fold_copies_into_lookalike(Verdict("medium", (), ()),
                                                [CloneMatch("EleuterAI/gpt-j-6B-GGUF", "EleutherAI/gpt-j-6b", ("gguf",))])
    assert gguf.risk == "high"
    assert incidents.fold_copies_into_lookalike(exact, [CloneMatch("EleuterAI/gpt-j-6B", "EleutherAI/gpt-j-6b", ())]
                                                ) == exact


def test_incident_keys_fold_rises_and_old_clone_findings():
    found = [_f("lookalike", "EleuterAI", namespace="EleuterAI", target="EleutherAI"),
             _f("lookalike", "EleuterAI", "critical", namespace="EleuterAI", target="EleutherAI"),
             _f("repo_clone", "EleuterAI/gpt-j-6B", repo="EleuterAI/gpt-j-6B", copies="EleutherAI/gpt-j-6b",
                namespace="EleuterAI"),
             _f("repo_clone", "quiet-lab/gpt-j-6B", repo="quiet-lab/gpt-j-6B", copies="EleutherAI/gpt-j-6b",
                namespace="quiet-lab"),
             _f("repo_clone", "EleuterAI/llama", repo="EleuterAI/llama", copies="meta-llama/llama",
                namespace="EleuterAI"),
             _f("ref_moved", "org/m")]
    keys = incidents.incident_keys(found)
    assert keys[0] == keys[1] == keys[2] == "namespace:eleuterai"
    assert len(set(keys)) == 4
    assert incidents.incidents(found)["namespace:eleuterai"].severity == "critical"


# --- issue 14 point 4 with the fold: a copy in an impostor namespace is judged by its content too --
@pytest.mark.parametrize("copy", ["gpt-j-6B", "gpt-j-6b-GGUF"])
def test_a_folded_copy_with_a_dangerous_pickle_raises_the_lookalike_naming_the_import(env, hub, slack, copy):
    """The copy is folded into the namespace's `lookalike` finding (one incident), and its content is
    still inspected: a critical pickle raises the lookalike to critical (a derivative alone is high)
    and the alert names the import and the file."""
    from tests.content_corpus import EVIL_PKL

    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(5), followers=1)
    hub.add_repo(f"EleuterAI/{copy}", files={"pytorch_model.bin": EVIL_PKL}, created_at=now_iso(4))
    for _ in range(3):
        env.once()
    found = env.findings()
    assert {f["kind"] for f in found} == {"lookalike"}, found
    last = found[-1]
    assert last["severity"] == "critical" and copy in last["evidence"]["copied_repos"]
    assert "posix.system" in last["summary"] and "pytorch_model.bin" in last["summary"], last["summary"]
    assert any(p["dangerous"] == ["posix.system"] for c in last["evidence"]["content"].values()
               for p in c["pickles"]), last["evidence"]
    texts = [m["text"] for m in alerts_about(slack, "EleuterAI")]
    assert sum("posix.system" in t for t in texts) == 1, texts
    # one incident: no alert after the one naming the payload (the next cycles' assessments of the
    # namespace, which read no content, do not alert again at the same risk)
    assert "posix.system" in texts[-1] and len(found) == len(texts), texts
    assert hub.cdn.auth_seen == []


def test_a_payload_found_by_the_clone_watch_before_the_namespace_is_assessed_alerts_once(env, hub, slack):
    """The clone watch may fold the copy (and find its payload) before the look-alike discovery
    records the namespace: the discovery then adds no second alert for the same incident."""
    from monitor.jobs.clones import scan_clones
    from monitor.runtime import Runtime
    from tests.content_corpus import EVIL_PKL

    hub.add_org("EleuterAI", fullname="Eleuter AI", created_at=now_iso(5), followers=1)
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": EVIL_PKL}, created_at=now_iso(4))
    rt = Runtime.build(env.settings())
    try:
        scan_clones(rt)
    finally:
        rt.close()
    for _ in range(2):
        env.once()
    texts = [m["text"] for m in alerts_about(slack, "EleuterAI")]
    assert len(texts) == 1 and "posix.system" in texts[0], texts
