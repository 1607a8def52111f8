"""Issue 9 point 5: a real-world evaluation set. Public impostor cases and legitimate neighbours,
asserted on the name engine and on `hubwatch lookup` against the emulator, whose namespaces are
modelled on the public facts (ages and followings approximate; what matters is their order).

Sources:
- EleuterAI/gpt-j-6B vs EleutherAI/gpt-j-6b: PoisonGPT, Mithril Security (2023),
  https://blog.mithrilsecurity.io/poisongpt-how-we-hid-a-lobotomized-llm-on-hugging-face-to-spread-fake-news/
- Open-OSS/privacy-filter vs openai/privacy-filter (2026, ~244k downloads, credential stealer):
  https://global-ai-watch.com/de/article/malicious-ai-model-targets-users-on-hugging-face-platform-2026
  and https://www.systemshardening.com/articles/ai-landscape/huggingface-fake-repo-attack-defence/
- deepinsight/inswapper, "NOT us." from the InsightFace maintainers:
  https://github.com/deepinsight/insightface/issues/2339 (modelled: InsightFace's namespace
  publishes `inswapper`; the impostor namespace copies InsightFace's GitHub org name)
- meta-IIama: capital I for l, the homoglyph namesquat pattern catalogued for Hub orgs by
  https://github.com/security-pride/huggingface_squatting (illustrative, no single incident)
- Legitimate neighbours: https://huggingface.co/deepset vs https://huggingface.co/deepseek-ai,
  https://huggingface.co/HuggingFaceM4 vs https://huggingface.co/HuggingFaceH4 (both Hugging
  Face research teams).
"""

from __future__ import annotations

import json

import pytest

from monitor.jobs.clones import scan_clones
from monitor.jobs.lookalikes import scan_lookalikes
from monitor.jobs.lookup import screener_for
from monitor.runtime import Runtime
from tests.pins_env import PinsEnv
from tests.test_lookalike_discovery import now_iso

PROTECTED = ["EleutherAI", "openai", "insightface", "deepseek-ai", "HuggingFaceH4", "meta-llama"]

IMPOSTORS = [  # (name, protected name it imitates or None when only its repos link it, lowest risk)
    ("EleuterAI", "EleutherAI", "critical"),
    ("meta-IIama", "meta-llama", "high"),
    ("Open-OSS", None, "high"),
    ("deepinsight", None, "high"),
]
NEIGHBOURS = ["deepset", "HuggingFaceM4"]
CONTROLS = ["allenai", "intfloat", "sentence-transformers", "tiiuae"]
RANK = ("none", "low", "medium", "high", "critical")


def config(allow=()) -> str:
    return (f'[lookalike]\nprotected = {json.dumps(PROTECTED)}\nallow = {json.dumps(list(allow))}\n'
            'probe_budget = 400\n[limits]\nhub_requests_per_5min = 1000000\n')


@pytest.fixture
def env(hub, slack, tmp_path):
    e = PinsEnv(tmp_path, hub, slack)
    hub.rate_limit(1_000_000)  # emulator quota windows run in real time; budgets here are the config's
    e.extra = config()
    # the protected side
    hub.add_org("EleutherAI", fullname="EleutherAI", verified=True, followers=9000, created_at=now_iso(1800))
    hub.add_repo("EleutherAI/gpt-j-6b", files={"model.safetensors": b"w"}, downloads=90000, created_at=now_iso(1700))
    hub.add_org("openai", fullname="OpenAI", verified=True, followers=60000, created_at=now_iso(1500))
    hub.add_repo("openai/privacy-filter", files={"model.safetensors": b"w"}, downloads=50000, created_at=now_iso(40))
    hub.add_org("insightface", fullname="InsightFace", verified=True, followers=800, created_at=now_iso(1200))
    hub.add_repo("insightface/inswapper", files={"inswapper_128.onnx": b"w"}, downloads=9000, created_at=now_iso(900))
    hub.add_org("deepseek-ai", fullname="DeepSeek", verified=True, followers=80000, created_at=now_iso(1000))
    hub.add_repo("deepseek-ai/DeepSeek-R1", files={"model.safetensors": b"w"}, downloads=10**6)
    hub.add_org("HuggingFaceH4", fullname="Hugging Face H4", verified=False, followers=4000, created_at=now_iso(1300))
    hub.add_repo("HuggingFaceH4/zephyr-7b-beta", files={"model.safetensors": b"w"}, downloads=10**5)
    hub.add_org("meta-llama", fullname="Meta Llama", verified=True, followers=70000, created_at=now_iso(1100))
    hub.add_repo("meta-llama/Llama-3.1-8B", files={"model.safetensors": b"w"}, downloads=10**6)
    # the impostors, as they were: new, unverified, a copied name and a payload
    hub.add_org("EleuterAI", fullname="EleutherAI", created_at=now_iso(2), hide_counts=True)
    hub.add_repo("EleuterAI/gpt-j-6B", files={"pytorch_model.bin": b"poison"}, created_at=now_iso(1))
    hub.add_user("meta-IIama", fullname="Meta Llama", created_at=now_iso(6))
    hub.add_repo("meta-IIama/Llama-3-8B-Instruct", files={"model.safetensors": b"w"})
    hub.add_org("Open-OSS", fullname="Open OSS", created_at=now_iso(3), followers=1, hide_counts=True)
    hub.add_repo("Open-OSS/privacy-filter", files={"model.safetensors": b"w", "scripts/preprocess.py": "x"},
                 created_at=now_iso(2))
    hub.add_org("deepinsight", fullname="deepinsight", created_at=now_iso(20))
    hub.add_repo("deepinsight/inswapper", files={"inswapper_128.onnx": b"w", "handler.py": "x"})
    # the legitimate neighbours: years old, widely followed, nothing copied
    hub.add_org("deepset", fullname="deepset", followers=2000, created_at=now_iso(2000))
    hub.add_repo("deepset/roberta-base-squad2", files={"model.safetensors": b"w"}, downloads=10**6)
    hub.add_org("HuggingFaceM4", fullname="HuggingFaceM4", followers=3000, created_at=now_iso(1400))
    hub.add_repo("HuggingFaceM4/idefics2-8b", files={"model.safetensors": b"w"}, downloads=10**5)
    for name in CONTROLS:
        hub.add_org(name, followers=5000, created_at=now_iso(1500))
    return e


def test_engine_on_the_public_cases():
    screener = screener_for(PROTECTED, [])
    for name, target, _ in IMPOSTORS:
        matches = screener.screen(name)
        if target is None:
            assert matches == (), f"{name} imitates no spelling: only its repos give it away"
        else:
            assert matches and matches[0].target == target, name
    for name in CONTROLS:
        assert screener.screen(name) == (), name
    allowed = screener_for(PROTECTED, NEIGHBOURS)
    assert all(allowed.screen(n) == () for n in NEIGHBOURS), "the allowlist silences neighbours entirely"


@pytest.mark.parametrize("name,target,floor", IMPOSTORS)
def test_lookup_judges_impostors_high_or_critical(env, name, target, floor):
    out = json.loads(env.run("lookup", name, "--json").out)
    assert out["exists"] and RANK.index(out["risk"]) >= RANK.index(floor), out
    reasons = " | ".join(out["reasons"])
    if target:
        assert out["imitates"][0]["target"] == target
    else:
        assert "republishes protected repo(s)" in reasons
    assert "day(s) ago" in reasons, "the age is known (from _id or createdAt) and said"


@pytest.mark.parametrize("name", NEIGHBOURS + CONTROLS)
def test_lookup_judges_real_neighbours_low_or_none(env, name):
    out = json.loads(env.run("lookup", name, "--json").out)
    assert out["exists"] and out["risk"] in ("low", "none"), out


def test_discovery_finds_the_impostors_and_the_allowlist_silences_neighbours(env, hub):
    env.extra = config(allow=NEIGHBOURS)
    for name in NEIGHBOURS:
        assert json.loads(env.run("lookup", name, "--json").out)["risk"] == "none"
    rt = Runtime.build(env.settings())
    try:
        scan_lookalikes(rt, sources=("probe", "search"))
        scan_clones(rt, budget=100)
        stored = [s.finding for s in rt.store.findings()]
        flagged = {f.subject for f in stored}
    finally:
        rt.close()
    assert {"EleuterAI", "meta-IIama", "Open-OSS/privacy-filter", "deepinsight/inswapper"} <= flagged
    # one incident, one alert: PoisonGPT's copy is evidence of EleuterAI's lookalike, not a repo_clone
    assert "EleuterAI/gpt-j-6B" not in flagged
    assert any(f.kind == "lookalike" and f.subject == "EleuterAI" and "gpt-j-6B" in f.evidence["copied_repos"]
               for f in stored)
    assert not flagged & {*NEIGHBOURS, *CONTROLS}
