"""Contract tests: one per row of shared/HUB_API.md "What the real Hub answers".

Each test runs twice: against the emulator seeded with mirrors of the public repos it names
(tests/emulator/public_hub.py), and against huggingface.co under `pytest -m online` (the
pre-release check; skipped by default). The assertions are the same: an emulator kinder than the
Hub hides product bugs. Raw HTTP (`requests`, redirects not followed) because the rows are about
what the Hub sends, not about what huggingface_hub makes of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests import conftest
from tests.emulator import public_hub as pub

LEGACY = "2022-03-02T23:29:04.000Z"
RATE = re.compile(r'^"api";r=(\d+);t=(\d+)$')
POLICY = re.compile(r'^"fixed window";"api";q=(\d+);w=(\d+)$')
BAD_TOKEN = "hf_" + "x" * 34  # well-formed, never issued
TOKEN = "hf_contract_reader"
# The Hub's published OpenAPI document (`/.well-known/openapi.json`, 2026-08)
SCAN_LEVELS = ("unscanned", "safe", "queued", "error", "caution", "suspicious", "unsafe")


@dataclass
class Target:
    base: str
    online: bool
    token: str | None  # a valid read token (online: $HF_TOKEN when the run has one)

    def get(self, path: str, *, token: str | None = None, params=None, method: str = "GET") -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with requests.Session() as s:
            s.trust_env = False
            return s.request(method, self.base + path, headers=headers, params=params, timeout=30,
                             allow_redirects=False)

    def follow(self, path: str) -> requests.Response:
        with requests.Session() as s:
            s.trust_env = False
            return s.get(self.base + path, timeout=30)


@pytest.fixture(params=["emulator", pytest.param("hub", marks=pytest.mark.online)])
def target(request) -> Target:
    if request.param == "hub":
        return Target("https://huggingface.co", True, conftest.ONLINE_TOKEN)
    hub = request.getfixturevalue("hub")
    pub.seed(hub)
    hub.add_token(TOKEN, user="hubwatch-bot")
    return Target(hub.url, False, TOKEN)


def id_time(object_id: str) -> datetime:
    assert re.fullmatch(r"[0-9a-f]{24}", object_id), object_id
    return datetime.fromtimestamp(int(object_id[:8], 16), timezone.utc)


def hub_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_of(r: requests.Response) -> str:
    return r.json().get("error", "")


# ---- repos ----------------------------------------------------------------------------------------
def test_missing_repo_anonymous_is_401_without_code(target):
    for path in ("/api/models/openai-community/no-such-model-hubwatch-contract",
                 "/api/models/no-such-namespace-hubwatch-x/no-such-model"):
        r = target.get(path)
        assert r.status_code == 401
        assert r.json() == {"error": "Invalid username or password."}
        assert r.headers["X-Error-Message"] == "Invalid username or password."
        assert "X-Error-Code" not in r.headers


def test_missing_repo_with_token_is_404_repo_not_found(target):
    if target.token is None:
        pytest.skip("needs a read token: set HF_TOKEN for the online run")
    r = target.get("/api/models/openai-community/no-such-model-hubwatch-contract", token=target.token)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"


def test_revoked_token_is_401_invalid_credentials_on_every_call(target):
    for path in (f"/api/models/{pub.GPT2}", f"/api/models/{pub.GPT2}/refs", f"/api/models/{pub.GPT2}/commits/main",
                 f"/api/organizations/{pub.ORG}/overview", f"/{pub.GPT2}/resolve/main/config.json"):
        r = target.get(path, token=BAD_TOKEN)
        assert r.status_code == 401, path
        assert r.headers["X-Error-Message"] == "Invalid credentials in Authorization header", path


def test_gated_repo_without_access(target):
    info = target.get(f"/api/models/{pub.LLAMA}")
    assert info.status_code == 200
    body = info.json()
    assert body["gated"] == "manual" and body["siblings"] and body.get("disabled") is False
    assert target.get(f"/api/models/{pub.LLAMA}/refs").json()["branches"]
    commits = target.get(f"/api/models/{pub.LLAMA}/commits/main")
    assert commits.status_code == 401 and commits.headers["X-Error-Code"] == "GatedRepo"
    download = target.get(f"/{pub.LLAMA}/resolve/main/config.json")
    assert download.status_code == 401 and download.headers["X-Error-Code"] == "GatedRepo"
    assert target.get(f"/api/models/{pub.LLAMA}/discussions").status_code == 200
    if target.token is not None and not target.online:  # online: the token's owner may have been granted
        r = target.get(f"/api/models/{pub.LLAMA}/commits/main", token=target.token)
        assert r.status_code == 403 and r.headers["X-Error-Code"] == "GatedRepo"


def test_disabled_repo_answers_info_200_disabled(target):
    info = target.get(f"/api/models/{pub.GPT4CHAN}")
    assert info.status_code == 200
    body = info.json()
    assert body["disabled"] is True and body["gated"] == "auto"
    commits = target.get(f"/api/models/{pub.GPT4CHAN}/commits/main")
    assert commits.status_code == 401 and commits.headers["X-Error-Code"] == "GatedRepo"
    assert target.get(f"/api/models/{pub.GPT4CHAN}/discussions").status_code == 200
    file = (body.get("siblings") or [{"rfilename": "config.json"}])[0]["rfilename"]
    download = target.get(f"/{pub.GPT4CHAN}/resolve/main/{file}")  # recorded anonymously
    assert download.status_code == 403
    assert download.headers["X-Error-Message"] == "Access to this resource is disabled."


def test_unknown_revision_is_404_revision_not_found(target):
    r = target.get(f"/api/models/{pub.GPT2}/revision/no-such-branch-hubwatch")
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RevisionNotFound"


def test_legacy_repos_report_the_import_placeholder_as_created_at(target):
    for repo in (pub.GPT2, pub.BERT):
        body = target.get(f"/api/models/{repo}").json()
        assert body["createdAt"] == LEGACY, repo
        # gpt2's `_id` is recorded as that very second; the import made the others in its minutes.
        assert timedelta(0) <= id_time(body["_id"]) - hub_time(LEGACY) < timedelta(hours=1), repo
        if repo == pub.GPT2:
            assert id_time(body["_id"]) == hub_time(LEGACY)
    # ... and its history has commits older than that: createdAt vs commit dates proves nothing.
    oldest, url = None, f"{target.base}/api/models/{pub.GPT2}/commits/main"
    with requests.Session() as s:
        s.trust_env = False
        for _ in range(10):
            r = s.get(url, timeout=30)
            dates = [hub_time(c["date"]) for c in r.json()]
            oldest = min(dates + ([oldest] if oldest else []))
            nxt = r.links.get("next", {}).get("url")
            if not nxt:
                break
            url = nxt if nxt.startswith("http") else target.base + nxt
    assert oldest < hub_time(LEGACY)


def test_object_id_first_8_hex_digits_are_the_creation_second(target):
    repo = target.get(f"/api/models/{pub.SD15}").json()
    # createdAt has milliseconds, the `_id` whole seconds (and both are stamped at creation)
    assert timedelta(0) <= hub_time(repo["createdAt"]) - id_time(repo["_id"]) < timedelta(seconds=2)
    org = target.get(f"/api/organizations/{pub.ORG}/overview").json()
    assert datetime(2016, 1, 1, tzinfo=timezone.utc) < id_time(org["_id"]) < datetime.now(timezone.utc)
    user = target.get(f"/api/users/{pub.USER}/overview").json()
    assert abs((id_time(user["_id"]) - hub_time(user["createdAt"])).total_seconds()) < 86400


def test_renamed_legacy_and_miscased_ids_answer_307_relative(target):
    cases = {f"/api/models/gpt2": f"/api/models/{pub.GPT2}",
             f"/api/models/gpt2/commits/main": f"/api/models/{pub.GPT2}/commits/main",
             f"/api/models/{pub.GPT2.upper()}/refs": f"/api/models/{pub.GPT2}/refs"}
    for path, location in cases.items():
        r = target.get(path, params={"expand": "sha"} if path.endswith("gpt2") else None)
        assert r.status_code == 307, path
        assert r.headers["Location"].split("?")[0] == location, path
        assert not r.headers["Location"].startswith("http"), "relative Location"
    assert target.get("/api/models/gpt2", params={"expand": "sha"}).headers["Location"].endswith("?expand=sha")


def test_every_redirect_hop_counts_against_the_rate_limit(target):
    before = target.get(f"/api/models/{pub.GPT2}")
    hop = target.get("/api/models/gpt2")
    assert (before.status_code, hop.status_code) == (200, 307)
    (left, reset), (left_after, _) = (RATE.match(a.headers["RateLimit"]).groups() for a in (before, hop))
    if int(reset) >= 5:  # both in one window (online, other callers on this IP only lower the count)
        assert int(left_after) < int(left), "the 307 itself was counted"


def test_path_may_redirect_to_a_different_repo(target):
    r = target.get(f"/api/models/{pub.RUNWAY}")
    assert r.status_code == 307 and r.headers["Location"].split("?")[0] == f"/api/models/{pub.SD15}"
    landed = target.follow(f"/api/models/{pub.RUNWAY}").json()
    assert landed["id"] == pub.SD15
    assert id_time(landed["_id"]) >= datetime(2024, 8, 30, tzinfo=timezone.utc), "a repo created 2024-08-30"


# ---- namespaces -----------------------------------------------------------------------------------
ORG_KEYS = {"_id", "name", "fullname", "avatarUrl", "details", "isVerified", "isFollowing", "plan", "numUsers",
            "numModels", "numSpaces", "numDatasets", "numFollowers", "numPapers"}


def test_org_overview_shape_and_case_insensitivity(target):
    r = target.get(f"/api/organizations/{pub.ORG.lower()}/overview")
    assert r.status_code == 200, "case-insensitive, no redirect"
    body = r.json()
    assert body["name"] == pub.ORG and isinstance(body["isVerified"], bool)
    assert "createdAt" not in body and "type" not in body
    assert set(body) <= ORG_KEYS and {"_id", "name", "isVerified"} <= set(body)
    assert target.get("/api/organizations/openai-community/overview").json()["isVerified"] is False
    user = target.get(f"/api/organizations/{pub.USER}/overview")
    assert user.status_code == 404 and error_of(user) == "Sorry, we can't find the page you are looking for."


def test_user_overview_shape_case_redirect_and_org_404(target):
    body = target.get(f"/api/users/{pub.USER}/overview").json()
    assert body["user"] == pub.USER and body["type"] == "user" and hub_time(body["createdAt"])
    assert isinstance(body["orgs"], list) and body["orgs"]
    assert all("id" in o and "_id" not in o and "name" in o for o in body["orgs"])
    moved = target.get(f"/api/users/{pub.USER.upper()}/overview")
    assert moved.status_code == 307 and moved.headers["Location"].split("?")[0] == f"/api/users/{pub.USER}/overview"
    org = target.get(f"/api/users/{pub.ORG}/overview")
    assert org.status_code == 404 and error_of(org) == "This user does not exist"


def test_org_members_are_public_users(target):  # pagination: page size unrecorded (NOTES.md)
    r = target.get(f"/api/organizations/{pub.MEMBERS_OF}/members")
    assert r.status_code == 200
    members = r.json()
    assert members and all(m["type"] == "user" and {"_id", "user", "fullname", "avatarUrl", "isPro"} <= set(m)
                           for m in members)


def test_model_list_items_and_cursor(target):
    r = target.get("/api/models", params={"author": "openai-community", "limit": 1})
    assert r.status_code == 200
    (item,) = r.json()
    assert {"_id", "id", "likes", "private", "downloads", "tags", "createdAt", "modelId"} <= set(item)
    assert not {"author", "lastModified", "sha"} & set(item)
    if len(target.follow("/api/models?author=openai-community&limit=2").json()) > 1:
        assert "cursor=" in r.links["next"]["url"]


def test_commit_list_shape_total_and_page_links(target):
    r = target.get(f"/api/models/{pub.GPT2}/commits/main")
    items = r.json()
    assert items and all({"id", "title", "message", "authors", "date"} <= set(c) for c in items)
    assert all(isinstance(a.get("user"), str) for c in items for a in c["authors"] if a)
    total = int(r.headers["X-Total-Count"])
    assert total >= len(items)
    if total > len(items):
        assert "p=1" in r.links["next"]["url"]


def test_security_status_levels(target):
    body = target.get(f"/api/models/{pub.GPT2}", params={"securityStatus": "true"}).json()
    status = body["securityRepoStatus"]
    assert isinstance(status["scansDone"], bool) and isinstance(status["filesWithIssues"], list)
    assert all(f["level"] in SCAN_LEVELS for f in status["filesWithIssues"])


def test_every_api_answer_carries_rate_limit_headers(target):
    answers = [target.get(f"/api/models/{pub.GPT2}"),                                 # 200
               target.get("/api/models/gpt2"),                                         # 307
               target.get("/api/models/openai-community/no-such-model-hubwatch"),    # 401
               target.get(f"/api/models/{pub.GPT2}/revision/no-such-branch-hubwatch"),  # 404
               target.get(f"/api/organizations/{pub.USER}/overview")]                 # 404
    assert [a.status_code for a in answers] == [200, 307, 401, 404, 404]
    for a in answers:
        rate, policy = RATE.match(a.headers["RateLimit"]), POLICY.match(a.headers["RateLimit-Policy"])
        assert rate and policy, a.url
        assert int(policy.group(1)) == 500 and int(policy.group(2)) == 300, "anonymous: 500 per 5 minutes"
        assert 0 <= int(rate.group(1)) < 500 and 0 <= int(rate.group(2)) <= 300


# ---- round 2 (tests/emulator/NOTES.md, "Rows added by hubwatch, round 2") ---------------------------
def test_import_era_repos_report_any_second_of_the_import_minute(target):
    """deepset/roberta-base-squad2 reports `:05` (huggingface_hub cassette
    InferenceApiTest.test_inference_missing_input), gpt2 `:04`: both inside 2022-03-02 23:29 UTC."""
    minute = hub_time(LEGACY).replace(second=0)
    seconds = {}
    for repo in (pub.GPT2, pub.DEEPSET):
        body = target.get(f"/api/models/{repo}").json()
        created = hub_time(body["createdAt"])
        assert minute <= created < minute + timedelta(minutes=1), (repo, body["createdAt"])
        seconds[repo] = created.second
    assert seconds == {pub.GPT2: 4, pub.DEEPSET: 5}


def test_legacy_alias_answers_307_or_200_with_the_target_object(target):
    """`GET /api/models/gpt2`: 307 to openai-community/gpt2 (2026-10), or 200 with `"id": "gpt2"` and
    openai-community/gpt2's `_id` (cassette TestTextGenerationClientVCR.test_generate_non_tgi_endpoint,
    2025-03). Either way the `_id` is the target's: identity is the `_id`, never a URL."""
    target_id = target.get(f"/api/models/{pub.GPT2}").json()["_id"]
    r = target.get("/api/models/gpt2")
    assert r.status_code in (200, 307)
    if r.status_code == 307:
        assert r.headers["Location"].split("?")[0] == f"/api/models/{pub.GPT2}"
        r = target.follow("/api/models/gpt2")
        assert r.json()["id"] == pub.GPT2
    else:
        assert r.json()["id"] == "gpt2"
    assert r.json()["_id"] == target_id


def test_emulator_legacy_alias_variant_answering_200(hub):
    pub.seed(hub)
    hub.add_redirect("gpt2", pub.GPT2, answer=200)
    info = hub_get(hub, "/api/models/gpt2")
    assert info.status_code == 200
    body, real = info.json(), hub_get(hub, f"/api/models/{pub.GPT2}").json()
    assert (body["id"], body["_id"], body["sha"]) == ("gpt2", real["_id"], real["sha"])
    refs = hub_get(hub, "/api/models/gpt2/refs")
    assert refs.status_code == 200 and refs.json() == hub_get(hub, f"/api/models/{pub.GPT2}/refs").json()


def test_emulator_scan_levels_are_served_as_the_hub_publishes_them(hub):
    hub.add_repo("acme/m", files={f"{level}.bin": b"x" for level in SCAN_LEVELS})
    hub.set_security("acme/m", [{"path": f"{level}.bin", "level": level} for level in SCAN_LEVELS])
    status = hub_get(hub, "/api/models/acme/m", params={"securityStatus": "true"}).json()["securityRepoStatus"]
    assert status["scansDone"] is True
    assert [f["level"] for f in status["filesWithIssues"]] == list(SCAN_LEVELS)


def test_emulator_error_message_only_in_the_body(hub):
    """Recorded: a 409 on repo create with `{"error": "You already created this space repo", ...}` and
    no X-Error-Message / X-Error-Code (cassette TestSpaceAPIProduction.test_manage_secrets, 2025-03).
    Not provokable read-only online: the emulator's variant serves every error so."""
    hub.add_repo("acme/m")
    hub.set_disabled("acme/m")
    hub.errors_in_body_only()
    r = hub_get(hub, "/acme/m/resolve/main/.gitattributes")
    assert r.status_code == 403 and r.json()["error"] == "Access to this resource is disabled."
    assert "X-Error-Message" not in r.headers and "X-Error-Code" not in r.headers
    missing = hub_get(hub, "/api/models/acme/m/revision/nope")
    assert missing.headers["X-Error-Code"] == "RevisionNotFound" and "X-Error-Message" not in missing.headers


NAMES = ["gpt2", "org/model", "a..b", "org/a..b", "a--b", "org/a--b", "-a", "a-", ".a", "a.", "org/-a",
         "org/a.", "a.git", "org/a.git", "org/" + "x" * 96, "org/" + "x" * 97, "x" * 96, "x" * 97, "a_b",
         "A.b-c_d", "org/a.gitx", "_a", "a_", "_org/model", "org/_m", "org/m_"]


@pytest.mark.parametrize("name", NAMES)
def test_names_follow_huggingface_hubs_validate_repo_id(name):
    """The rule is client-side (shared/HUB_API.md, "Names"): the installed client is the contract."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from monitor.config import valid_repo_id
    from monitor.detect.names import validate_hub_name
    from monitor.refs.model import is_hub_id

    try:
        validate_repo_id(name)
        client_ok = True
    except HFValidationError:
        client_ok = False
    parts = name.split("/")
    assert all(validate_hub_name(p) is None for p in parts) == client_ok, name
    assert is_hub_id(name) == client_ok, f"refs scan's idea of a Hub id: {name}"
    if len(parts) == 2:
        assert (valid_repo_id(name) is None) == client_ok, name
# ---- file downloads ------------------------------------------------------------------------------
def _origin(url: str) -> tuple:
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def test_lfs_resolve_redirects_to_a_cdn_on_another_origin_with_the_metadata(target):
    r = target.get(f"/{pub.GPT2}/resolve/main/model.safetensors", method="HEAD")
    assert r.status_code in (302, 307), r.status_code
    location = r.headers["Location"]
    assert location.startswith("http") and _origin(location) != _origin(target.base)
    size = int(r.headers["X-Linked-Size"])
    assert size > 4096 and r.headers["X-Linked-Etag"].strip('"W/')
    assert re.fullmatch(r"[0-9a-f]{40}", r.headers["X-Repo-Commit"])
    # The CDN honours Range: 206 and Content-Range, only the bytes asked for.
    with requests.Session() as s:
        s.trust_env = False
        part = s.get(location, headers={"Range": "bytes=0-7", "Accept-Encoding": "identity"}, timeout=30)
    assert part.status_code == 206 and part.headers["Content-Range"] == f"bytes 0-7/{size}"
    assert len(part.content) == 8


def test_small_file_resolve_answers_the_content_or_a_relative_resolve_cache_redirect(target):
    r = target.get(f"/{pub.GPT2}/resolve/main/config.json")
    if r.status_code == 307:  # seen 2025-07: a relative redirect to the Hub's own cache
        assert r.headers["Location"].startswith("/api/resolve-cache/models/")
        r = target.get(r.headers["Location"])
    assert r.status_code == 200 and "model_type" in r.json()


def test_emulator_cdn_never_sees_a_token_and_counts_bytes(hub):
    pub.seed(hub)
    hub.add_token(TOKEN, user="hubwatch-bot")
    r = hub_get(hub, f"/{pub.GPT2}/resolve/main/model.safetensors", token=TOKEN)
    assert r.status_code == 302 and r.content == b""
    with requests.Session() as s:
        s.trust_env = False
        part = s.get(r.headers["Location"], headers={"Range": "bytes=-4"}, timeout=30)
        unsigned = s.get(r.headers["Location"].split("?")[0], timeout=30)
        s.get(r.headers["Location"], headers={"Authorization": "Bearer leaked"}, timeout=30)
    assert part.status_code == 206 and part.content == pub.SAFETENSORS[-4:]
    assert unsigned.status_code == 403
    assert hub.cdn.requests == 3 and hub.cdn.bytes_served == 4 + len(pub.SAFETENSORS)
    assert len(hub.cdn.auth_seen) == 1  # the leak is recorded: tests assert it stays empty
    assert all("Signature" not in rec.path for rec in hub.cdn.log)


def test_emulator_resolve_cache_redirect_mode(hub):
    pub.seed(hub)
    hub.resolve_cache = True
    r = hub_get(hub, f"/{pub.GPT2}/resolve/main/config.json")
    assert r.status_code == 307 and r.headers["Location"].startswith("/api/resolve-cache/models/openai-community/")
    follow = Target(hub.url, False, None).follow(f"/{pub.GPT2}/resolve/main/config.json")
    assert follow.status_code == 200 and follow.text == pub.CONFIG


# ---- emulator-only rows: what cannot be provoked on the real Hub on demand --------------------------
def test_emulator_429_carries_the_same_headers_and_no_retry_after(hub):
    hub.add_repo("acme/m")
    hub.rate_limit(1, window=60)
    assert hub_get(hub, "/api/models/acme/m").status_code == 200
    r = hub_get(hub, "/api/models/acme/m")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert RATE.match(r.headers["RateLimit"]).group(1) == "0"
    assert POLICY.match(r.headers["RateLimit-Policy"]).group(1) == "1"


def test_emulator_token_gets_the_free_quota(hub):
    hub.add_repo("acme/m")
    hub.add_token(TOKEN)
    r = hub_get(hub, "/api/models/acme/m", token=TOKEN)
    assert POLICY.match(r.headers["RateLimit-Policy"]).group(1) == "1000"


def test_emulator_scan_caution_and_not_scanned_yet(hub):
    hub.add_repo("acme/m", files={"a.pkl": b"x", "b.bin": b"y"})
    hub.set_security("acme/m", ["a.pkl"], level="caution")
    status = hub_get(hub, "/api/models/acme/m", params={"securityStatus": "true"}).json()["securityRepoStatus"]
    assert status == {"scansDone": True, "filesWithIssues": [{"path": "a.pkl", "level": "caution"}]}
    hub.set_scan_pending("acme/m")
    status = hub_get(hub, "/api/models/acme/m", params={"securityStatus": "true"}).json()["securityRepoStatus"]
    assert status == {"scansDone": False, "filesWithIssues": []}


def test_emulator_org_overview_may_omit_counts(hub):
    hub.add_org("fresh-org", hide_counts=True, created_at="2026-11-01T00:00:00Z")
    body = hub_get(hub, "/api/organizations/fresh-org/overview").json()
    assert not any(k.startswith("num") for k in body)
    assert id_time(body["_id"]) == datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_emulator_private_repo_answers_like_a_missing_one(hub):
    hub.add_repo("acme/secret", private=True)
    hub.add_token(TOKEN, user="hubwatch-bot")
    r = hub_get(hub, "/api/models/acme/secret")
    assert r.status_code == 401 and r.json() == {"error": "Invalid username or password."}
    assert "X-Error-Code" not in r.headers
    r = hub_get(hub, "/api/models/acme/secret", token=TOKEN)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"


def hub_get(hub, path: str, *, token: str | None = None, params=None) -> requests.Response:
    return Target(hub.url, False, None).get(path, token=token, params=params)
