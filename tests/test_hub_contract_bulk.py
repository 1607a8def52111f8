"""Contract tests of the answers heads in bulk relies on (docs/heads-in-bulk.md, the rows added to
tests/emulator/NOTES.md), each run against the emulator and, under `pytest -m online`, against
huggingface.co — same assertions, raw HTTP, redirects not followed (tests/test_hub_contract.py).

The online suite also measures how long a push takes to show in a namespace listing
(`test_online_listing_latency_after_a_push`, needs a write token in $HF_TOKEN)."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from monitor.hub.listing import EXPAND
from tests import conftest
from tests.emulator import public_hub as pub
from tests.test_hub_contract import Target, target  # noqa: F401 - target is a fixture

SHA = re.compile(r"^[0-9a-f]{40}$")
NS = "openai-community"
RATE = re.compile(r'^"(api|resolvers|pages)";r=(\d+);t=(\d+)$')
POLICY = re.compile(r'^"fixed window";"(api|resolvers|pages)";q=(\d+);w=(\d+)$')


def listing(target: Target, *keys: str, **extra):
    params = [("author", NS), *(("expand", k) for k in keys), *extra.items()]
    return target.get("/api/models", params=params)


@pytest.fixture
def more(target):
    """The emulator's openai-community holds a second repo, as the real one does (gpt2-medium…)."""
    if not target.online:
        conftest.EMULATOR.add_repo(f"{NS}/gpt2-medium", files={"config.json": "{}"})
    return target


def test_listing_with_expand_answers_only_id_and_the_keys_asked(more):
    r = listing(more, *EXPAND)
    assert r.status_code == 200
    items = r.json()
    assert isinstance(items, list) and items
    for item in items:
        assert {"_id", "id"} <= set(item) <= {"_id", "id", *EXPAND}, item
        assert {"sha", "lastModified", "createdAt", "private"} <= set(item), item
        assert SHA.match(item["sha"]) and item["id"].split("/")[0] == NS
        assert "downloads" not in item and "siblings" not in item and "securityRepoStatus" not in item


def test_listed_sha_is_the_default_branch_head(target):
    (item,) = [i for i in listing(target, "sha", "lastModified").json() if i["id"] == pub.GPT2]
    refs = target.get(f"/api/models/{pub.GPT2}/refs").json()
    (main,) = [b for b in refs["branches"] if b["name"] == "main"]
    assert item["sha"] == main["targetCommit"]
    info = target.get(f"/api/models/{pub.GPT2}", params=[("expand", "lastModified")]).json()
    assert item["lastModified"] == info["lastModified"]


def test_listing_paginates_with_a_link_cursor(more):
    r = listing(more, "sha", limit="1")
    assert r.status_code == 200 and len(r.json()) == 1
    assert 'rel="next"' in r.headers.get("Link", "") and "cursor=" in r.headers["Link"]


def test_listing_refuses_an_unknown_expand_value(target):
    """huggingface_hub's live test `test_list_models_expand_unexpected_value`: 400."""
    r = listing(target, "sha", "securityRepoStatus")
    assert r.status_code == 400


def test_file_downloads_are_metered_in_their_own_bucket(target):
    r = target.get(f"/{pub.GPT2}/resolve/main/config.json")
    assert r.status_code in (200, 302, 307)
    api = target.get(f"/api/models/{pub.GPT2}")
    assert RATE.match(api.headers["RateLimit"]).group(1) == "api"
    if not target.online or "RateLimit" in r.headers:  # the emulator always says; the Hub when it does
        rate, policy = RATE.match(r.headers["RateLimit"]), POLICY.match(r.headers["RateLimit-Policy"])
        assert rate and policy and rate.group(1) == policy.group(1) == "resolvers", r.headers


@pytest.mark.online
def test_online_listing_latency_after_a_push():
    """How long a new push takes to show in `list_models(author=…, expand=[sha])`. Needs a write
    token ($HF_TOKEN); prints the figure for docs/heads-in-bulk.md."""
    token = conftest.ONLINE_TOKEN
    if not token:
        pytest.skip("needs a write token in $HF_TOKEN")
    from huggingface_hub import HfApi

    api = HfApi(endpoint="https://huggingface.co", token=token)
    user = api.whoami()["name"]
    repo = f"{user}/hubwatch-listing-latency-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo, private=False)
    try:
        head = api.upload_file(path_or_fileobj=b"one", path_in_repo="x.txt", repo_id=repo).oid
        pushed = time.monotonic()
        seen = None
        while time.monotonic() - pushed < 600:
            items = {m.id: m.sha for m in api.list_models(author=user, expand=["sha"])}
            if items.get(repo) == head:
                seen = time.monotonic() - pushed
                break
            time.sleep(2)
        print(f"listing latency after a push: {seen if seen is not None else 'over 600'} s")
        assert seen is not None, "the push did not show in the listing within 10 minutes"
    finally:
        api.delete_repo(repo)
