"""Issue 7 point 8: the real org overview has no `createdAt` and may omit its counts. Age comes
from the `_id` (an ObjectId: first 8 hex digits = creation second); missing counts are unknown,
never 0, and the namespace's repos are listed anyway."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from monitor.detect.times import object_id_time
from monitor.hub.namespaces import _namespace
from monitor.jobs.lookalikes import scan_lookalikes
from monitor.runtime import Runtime, utcnow
from tests.test_lookalike_discovery import env  # noqa: F401 - the shared fixture

GPT2_ID = "621ffdc036468d709f174328"  # openai-community/gpt2 on the real Hub


def test_object_id_time_is_the_creation_second():
    assert object_id_time(GPT2_ID) == datetime(2022, 3, 2, 23, 29, 4, tzinfo=timezone.utc)
    for bad in (None, 5, "", "621ffdc0", "zz1ffdc036468d709f174328", "000000003646 8d709f17432"):
        assert object_id_time(bad) is None


def test_overview_without_createdat_or_counts_is_aged_from_id_and_counts_unknown():
    ns = _namespace({"_id": GPT2_ID, "name": "x", "isVerified": False}, "org")
    assert ns.created_at == "2022-03-02T23:29:04Z"
    assert (ns.followers, ns.models, ns.datasets, ns.spaces, ns.members) == (None,) * 5
    user = _namespace({"_id": GPT2_ID, "user": "u", "createdAt": "2023-01-01T00:00:00.000Z",
                       "numFollowers": 0}, "user")
    assert user.created_at == "2023-01-01T00:00:00.000Z" and user.followers == 0


def test_day_old_impostor_without_counts_is_critical_with_its_age(env, hub, slack):  # noqa: F811
    created = utcnow() - timedelta(days=1, hours=2)
    hub.add_org("EleuterAI", fullname="EleutherAI", created_at=created, hide_counts=True)
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"poison"}, created_at=created)
    r = env.run("lookup", "EleuterAI", "--json")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert out["risk"] == "critical"
    assert out["created_at"] == datetime.fromtimestamp(int(created.timestamp()), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert out["models"] is None and out["followers"] is None
    reasons = " | ".join(out["reasons"])
    assert "created 1 day(s) ago" in reasons and "copies repo names of EleutherAI: gpt-j-6B" in reasons
    assert "no public models" not in reasons and "follower count not published" in reasons
    text = env.run("lookup", "EleuterAI").out
    assert "followers: unknown" in text and "RISK: CRITICAL" in text.upper()

    rt = Runtime.build(env.settings())
    try:
        scan_lookalikes(rt, sources=("probe",))
        (f,) = [s.finding for s in rt.store.findings(kind="lookalike")]
        assert f.severity == "critical" and f.evidence["created_at"] == out["created_at"]
        assert f.evidence["followers"] is None and f.evidence["copied_repos"] == ["gpt-j-6B"]
    finally:
        rt.close()


def test_hidden_counts_without_copies_still_high_when_new(env, hub, slack):  # noqa: F811
    created = utcnow() - timedelta(days=5)
    hub.add_org("EleutherAl", created_at=created, hide_counts=True)
    out = json.loads(env.run("lookup", "EleutherAl", "--json").out)
    assert out["risk"] == "high" and "created 5 day(s) ago" in out["reasons"]
    assert "no public models" in out["reasons"]  # listed, and the listing is empty
