"""The Hub emulator, driven by the real huggingface_hub client (HfApi, hf_hub_download, get_session).

HF_ENDPOINT points at the session emulator (tests/conftest.py); the `hub` fixture empties it per test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import socket
from datetime import datetime, timezone
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, get_session, hf_hub_download
from huggingface_hub.errors import (
    BadRequestError,
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import hf_raise_for_status, parse_ratelimit_headers

from tests.emulator import HubEmulator

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TOKEN = "hf_test_reader"
FILES = {"config.json": '{"a": 1}', "model.safetensors": b"\x00weights" * 16, "sub/dir/notes.txt": "hello"}


@pytest.fixture
def api() -> HfApi:
    return HfApi()


@pytest.fixture(autouse=True)
def _no_emulator_bugs(request):
    """An exception inside the emulator is answered as a 500; make it fail the test that caused it."""
    hub = request.getfixturevalue("hub") if "hub" in request.fixturenames else None
    yield
    assert hub is None or not hub.errors, "\n".join(hub.errors)


def raw(hub: HubEmulator, path: str, method: str = "GET", **kwargs) -> httpx2.Response:
    return get_session().request(method, hub.url + path, **kwargs)


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---- repo info -------------------------------------------------------------------------------
def test_model_info_plain(hub, api):
    sha = hub.add_repo("Acme/Model-A", files=FILES, created_at="2023-05-06T07:08:09Z")
    info = api.model_info("Acme/Model-A")
    assert (info.id, info.author, info.sha, info.private, info.gated, info.disabled) == (
        "Acme/Model-A", "Acme", sha, False, False, False)
    assert info.created_at == datetime(2023, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", *sorted(FILES)]
    r = raw(hub, "/api/models/Acme/Model-A")
    body = r.json()
    assert re.fullmatch(r"[0-9a-f]{24}", body["_id"]) and body["modelId"] == "Acme/Model-A"
    assert ISO_MS.fullmatch(body["createdAt"]) and ISO_MS.fullmatch(body["lastModified"])
    assert r.headers["X-Request-Id"] and int(r.headers["Content-Length"]) == len(r.content)
    commits = api.list_repo_commits("Acme/Model-A")
    assert [c.title for c in commits] == ["Upload files", "initial commit"] and commits[1].authors == ["system"]


def test_model_info_revision_branch_tag_sha_and_pr(hub, api):
    first = hub.add_repo("acme/m", files={"a.txt": "1"})
    second = hub.commit("acme/m", {"a.txt": "2"}, title="bump")
    hub.create_tag("acme/m", "v1", first)
    hub.create_branch("acme/m", "dev", from_sha=first)
    pr = hub.create_pr("acme/m", {"b.txt": "pr"})
    assert api.model_info("acme/m").sha == second
    assert api.model_info("acme/m", revision="v1").sha == first
    assert api.model_info("acme/m", revision="dev").sha == first
    assert api.model_info("acme/m", revision=first).sha == first
    pr_info = api.model_info("acme/m", revision=f"refs/pr/{pr}")
    assert "b.txt" in {s.rfilename for s in pr_info.siblings}
    assert hub.count(r"^GET /api/models/acme/m/revision/refs%2Fpr%2F1$") == 1


def test_model_info_blobs_and_security_status(hub, api):
    old = hub.add_repo("acme/m", files=FILES)
    new = hub.commit("acme/m", {"evil.pkl": b"\x80\x04pickle"})
    hub.set_security("acme/m", ["evil.pkl"])
    hub.set_security("acme/m", [], sha=old)
    info = api.model_info("acme/m", files_metadata=True, securityStatus=True)
    by_name = {s.rfilename: s for s in info.siblings}
    weights = FILES["model.safetensors"]
    lfs = by_name["model.safetensors"].lfs
    assert (lfs.sha256, lfs.size, by_name["model.safetensors"].size) == (
        hashlib.sha256(weights).hexdigest(), len(weights), len(weights))
    assert 120 <= lfs.pointer_size <= 140 and by_name["evil.pkl"].lfs is not None
    assert by_name["config.json"].blob_id == git_oid(FILES["config.json"].encode())
    assert by_name["config.json"].lfs is None
    assert info.sha == new
    assert info.security_repo_status == {"scansDone": True,
                                         "filesWithIssues": [{"path": "evil.pkl", "level": "unsafe"}]}
    assert api.model_info("acme/m", revision=old, securityStatus=True).security_repo_status["filesWithIssues"] == []


def test_model_info_expand_returns_only_requested_keys(hub, api):
    sha = hub.add_repo("acme/m", files=FILES)
    info = api.model_info("acme/m", expand=["sha", "createdAt"])
    assert info.sha == sha and info.siblings is None and info.author is None
    body = raw(hub, "/api/models/acme/m", params=[("expand", "sha"), ("expand", "createdAt")]).json()
    assert set(body) == {"_id", "id", "sha", "createdAt"}
    with pytest.raises(BadRequestError):
        hf_raise_for_status(raw(hub, "/api/models/acme/m", params={"expand": "sha", "blobs": "true"}))
    with pytest.raises(BadRequestError):
        hf_raise_for_status(raw(hub, "/api/models/acme/m", params={"expand": "notAField"}))


def test_dataset_info_and_types_are_separate(hub, api):
    sha = hub.add_repo("acme/data", type="dataset", files={"train.csv": "a,b\n1,2\n"})
    info = api.dataset_info("acme/data", files_metadata=True)
    assert (info.id, info.sha, info.author) == ("acme/data", sha, "acme")
    assert "modelId" not in raw(hub, "/api/datasets/acme/data").json()
    with pytest.raises(HfHubHTTPError) as e:  # no model of that name: anonymous 401, as the Hub answers
        api.model_info("acme/data")
    assert e.value.response.status_code == 401
    assert [c.commit_id for c in api.list_repo_commits("acme/data", repo_type="dataset")][0] == sha


def test_list_repo_refs_branches_tags_prs(hub, api):
    first = hub.add_repo("acme/m", files={"a": "1"})
    hub.create_branch("acme/m", "dev")
    hub.create_tag("acme/m", "v1")
    pr = hub.create_pr("acme/m", {"b": "2"})
    refs = api.list_repo_refs("acme/m", include_pull_requests=True)
    assert {(b.name, b.ref, b.target_commit) for b in refs.branches} == {
        ("main", "refs/heads/main", first), ("dev", "refs/heads/dev", first)}
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("v1", "refs/tags/v1", first)]
    assert [p.ref for p in refs.pull_requests] == [f"refs/pr/{pr}"] and refs.converts == []
    assert "pullRequests" not in raw(hub, "/api/models/acme/m/refs").json()


def test_list_repo_commits_paginates_newest_first(hub, api):
    hub.page_size = 2
    hub.add_repo("acme/m", files={"a": "0"})
    shas = [hub.commit("acme/m", {"a": str(i)}, title=f"c{i}", author="bob") for i in range(1, 6)]
    commits = api.list_repo_commits("acme/m")
    assert [c.commit_id for c in commits[:5]] == shas[::-1]
    assert len(commits) == 7 and commits[0].authors == ["bob"] and commits[0].title == "c5"
    assert hub.count(r"^GET /api/models/acme/m/commits/main") == 4  # 7 items, 2 per page
    link = raw(hub, "/api/models/acme/m/commits/main").headers["Link"]
    assert link.startswith(f"<{hub.url}/api/models/acme/m/commits/main?") and 'rel="next"' in link


def test_list_repo_tree(hub, api):
    hub.add_repo("acme/m", files=FILES)
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("acme/m")}
    assert top == {".gitattributes": "RepoFile", "config.json": "RepoFile", "model.safetensors": "RepoFile",
                   "sub": "RepoFolder"}
    assert [e.path for e in api.list_repo_tree("acme/m", "sub")] == ["sub/dir"]
    hub.page_size = 2
    every = {e.path: e for e in api.list_repo_tree("acme/m", recursive=True)}
    assert set(every) == set(top) | {"sub/dir", "sub/dir/notes.txt"}
    assert hub.count(r"/tree/main\?recursive=true") == 3  # 6 entries, 2 per page
    weights = every["model.safetensors"]
    assert weights.lfs.sha256 == hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert every["sub"].tree_id != every["sub/dir"].tree_id
    expanded = {e.path: e for e in api.list_repo_tree("acme/m", expand=True)}
    assert expanded["config.json"].last_commit.title == "Upload files" and expanded["config.json"].security.safe


def test_get_paths_info_returns_present_paths_only(hub, api):
    hub.add_repo("acme/m", files=FILES)
    infos = api.get_paths_info("acme/m", ["config.json", "missing.bin", "sub", "model.safetensors"])
    assert [(i.path, type(i).__name__) for i in infos] == [
        ("config.json", "RepoFile"), ("sub", "RepoFolder"), ("model.safetensors", "RepoFile")]
    assert infos[0].blob_id == git_oid(FILES["config.json"].encode())


def test_hf_hub_download(hub, tmp_path):
    first = hub.add_repo("acme/m", files=FILES)
    hub.create_tag("acme/m", "v1")
    hub.commit("acme/m", {"config.json": '{"a": 2}'})
    path = hf_hub_download("acme/m", "model.safetensors", cache_dir=tmp_path)
    assert Path(path).read_bytes() == FILES["model.safetensors"]
    old = hf_hub_download("acme/m", "config.json", revision="v1", cache_dir=tmp_path)
    assert Path(old).read_text() == FILES["config.json"] and first in old
    assert Path(hf_hub_download("acme/m", "config.json", cache_dir=tmp_path)).read_text() == '{"a": 2}'
    head = raw(hub, "/acme/m/resolve/main/model.safetensors", "HEAD", follow_redirects=False)
    sha256 = hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert head.status_code == 302 and head.headers["Location"].startswith(hub.cdn.url + "/")
    assert head.headers["X-Linked-Etag"] == f'"{sha256}"' and head.content == b""
    assert len(FILES["model.safetensors"]) == int(head.headers["X-Linked-Size"])
    assert hub.cdn.auth_seen == [] and hub.cdn.requests >= 1  # hf_hub_download fetched it from the CDN
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("acme/m", "nope.txt", cache_dir=tmp_path)
    hub.add_repo("acme/data", type="dataset", files={"train.csv": "x"})
    assert Path(hf_hub_download("acme/data", "train.csv", repo_type="dataset", cache_dir=tmp_path)).read_text() == "x"


# ---- visibility and errors -------------------------------------------------------------------
def test_private_and_missing_repos_401_anonymous_404_with_token(hub):
    hub.add_token(TOKEN, user="outsider")
    hub.add_token("hf_owner", user="acme")
    hub.add_repo("acme/secret", files={"a": "1"}, private=True)
    anon, outsider, owner = HfApi(), HfApi(token=TOKEN), HfApi(token="hf_owner")
    for repo in ("acme/secret", "acme/absent"):
        # The real Hub sends no X-Error-Code here; the client maps that to RepositoryNotFoundError only
        # on https:// URLs, so over the emulator's http:// it stays a plain 401.
        with pytest.raises(HfHubHTTPError) as e:
            anon.model_info(repo)
        assert e.value.response.status_code == 401 and "X-Error-Code" not in e.value.response.headers
        assert e.value.response.json() == {"error": "Invalid username or password."}
        with pytest.raises(RepositoryNotFoundError) as e:
            outsider.model_info(repo)
        assert e.value.response.status_code == 404
    assert owner.model_info("acme/secret").private is True
    assert [m.id for m in outsider.list_models(author="acme")] == []
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(token="hf_bogus").model_info("acme/secret")
    assert e.value.response.status_code == 401 and not isinstance(e.value, RepositoryNotFoundError)


def test_gated_repo_metadata_public_downloads_refused(hub, tmp_path):
    hub.add_token(TOKEN, user="reader")
    hub.add_repo("acme/gated", files={"w.bin": b"123"}, gated="manual")
    assert HfApi().model_info("acme/gated").gated == "manual"
    with pytest.raises(GatedRepoError) as e:
        hf_hub_download("acme/gated", "w.bin", cache_dir=tmp_path)
    assert e.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as e:
        hf_hub_download("acme/gated", "w.bin", cache_dir=tmp_path, token=TOKEN)
    assert e.value.response.status_code == 403
    hub.grant_access("acme/gated", "reader")
    assert Path(hf_hub_download("acme/gated", "w.bin", cache_dir=tmp_path, token=TOKEN)).read_bytes() == b"123"


def test_disabled_repo(hub, api):
    hub.add_repo("acme/bad", files={"a": "1"})
    hub.set_disabled("acme/bad")
    info = api.model_info("acme/bad")  # a takedown is a 200 answer with disabled: true
    assert (info.disabled, info.gated) == (True, "auto")
    assert api.list_repo_refs("acme/bad").branches
    with pytest.raises(GatedRepoError):
        api.list_repo_commits("acme/bad")
    with pytest.raises(DisabledRepoError):
        hf_raise_for_status(raw(hub, "/acme/bad/resolve/main/a"))


def test_revision_not_found(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/m", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits("acme/m", revision="0" * 40)


# ---- renames, casing, re-creation, history rewrites -----------------------------------------------
def test_rename_redirects_every_old_url(hub, api, tmp_path):
    sha = hub.add_repo("acme/old-name", files={"a.txt": "A"})
    hub.rename_repo("acme/old-name", "newco/new-name")
    info = api.model_info("acme/old-name", files_metadata=True)
    assert (info.id, info.sha, info.author) == ("newco/new-name", sha, "newco")
    r = raw(hub, "/api/models/acme/old-name/revision/main", params={"blobs": "true"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["Location"] == "/api/models/newco/new-name/revision/main?blobs=true"
    assert Path(hf_hub_download("acme/old-name", "a.txt", cache_dir=tmp_path)).read_text() == "A"
    assert [c.commit_id for c in api.list_repo_commits("acme/old-name")][0] == sha
    hub.add_repo("acme/old-name", files={"b.txt": "B"})  # a new repo at the old name shadows the redirect
    assert api.model_info("acme/old-name").id == "acme/old-name"


def test_miscased_id_redirects_to_canonical(hub, api):
    hub.add_repo("Acme/Model-A", files={"a": "1"})
    assert api.model_info("acme/MODEL-a").id == "Acme/Model-A"
    assert hub.count(r"^GET /api/models/acme/MODEL-a$") == 1 and hub.requests[0].status == 307


def test_recreated_repo_has_new_id_and_history(hub, api):
    old_sha = hub.add_repo("acme/m", files={"a": "1"}, created_at="2022-01-01T00:00:00Z")
    before = raw(hub, "/api/models/acme/m").json()
    hub.recreate_repo("acme/m", files={"a": "1"})
    after = raw(hub, "/api/models/acme/m").json()
    assert after["_id"] != before["_id"] and after["createdAt"] > before["createdAt"]
    assert after["sha"] != old_sha
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/m", revision=old_sha)


def test_tag_move_and_delete_visible_in_refs(hub, api):
    first = hub.add_repo("acme/m", files={"a": "1"})
    second = hub.commit("acme/m", {"a": "2"})
    hub.create_tag("acme/m", "v1", first)
    hub.create_tag("acme/m", "v2", first)
    hub.move_tag("acme/m", "v1", second)
    hub.delete_tag("acme/m", "v2")
    assert [(t.name, t.target_commit) for t in api.list_repo_refs("acme/m").tags] == [("v1", second)]


def test_rewrite_history_hides_old_head_until_gc(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    middle = hub.commit("acme/m", {"a": "2"})
    old_head = hub.commit("acme/m", {"a": "3"})
    new_head = hub.rewrite_history("acme/m", files={"a": "evil"})
    history = [c.commit_id for c in api.list_repo_commits("acme/m")]
    assert history[0] == new_head and old_head not in history and middle not in history
    assert api.model_info("acme/m", revision=old_head).sha == old_head
    hub.reset_branch("acme/m", "main", old_head)
    assert api.model_info("acme/m").sha == old_head
    hub.rewrite_history("acme/m")
    assert hub.gc("acme/m") >= 2
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/m", revision=old_head)


# ---- faults, latency, rate limits -------------------------------------------------------------------
def test_fault_500_once_then_ok(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    fault = hub.fail(r"^GET /api/models/acme/m$", status=500)
    with pytest.raises(HfHubHTTPError) as e:
        api.model_info("acme/m")
    assert e.value.response.status_code == 500 and e.value.response.headers["X-Request-Id"]
    assert api.model_info("acme/m").id == "acme/m" and fault.hits == 1
    assert [r.status for r in hub.requests] == [500, 200] and hub.requests[0].fault == "status"


def test_paginated_calls_retry_server_errors(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    hub.fail(r"/commits/", status=503)
    assert len(api.list_repo_commits("acme/m")) == 2  # the client slept 1 s and retried
    assert [r.status for r in hub.requests] == [503, 200]


def test_fault_garbled_json(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    hub.fail("acme/m", kind="garbled")
    with pytest.raises(json.JSONDecodeError):
        api.model_info("acme/m")


def test_fault_timeout_hits_client_timeout(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    hub.fail("acme/m", kind="timeout")
    with pytest.raises(httpx2.TimeoutException):
        api.model_info("acme/m", timeout=0.2)
    assert api.model_info("acme/m", timeout=2).id == "acme/m"


def test_fault_reset_and_redirect_loop(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    hub.fail("acme/m", kind="reset")
    with pytest.raises(httpx2.TransportError):
        api.model_info("acme/m")
    assert hub.requests[-1].status == 0 and api.model_info("acme/m").id == "acme/m"
    hub.fail("acme/m", kind="redirect_loop", times=None)
    with pytest.raises(httpx2.TooManyRedirects):
        api.model_info("acme/m")


def test_fault_probability_is_seeded(hub):
    hub.add_repo("acme/m", files={"a": "1"})

    def run() -> list[int]:
        hub.clear_faults()
        hub.fail("acme/m", status=503, times=None, probability=0.5, seed=7)
        return [raw(hub, "/api/models/acme/m").status_code for _ in range(12)]

    first = run()
    assert first == run() and {200, 503} == set(first)


def test_latency_and_tcp_nodelay(hub):
    """No wall-clock assertions: the server's sockets are inspected, and latency is shown by a
    client timeout it exceeds."""
    hub.add_repo("acme/m", files={"a": "1"})
    with socket.create_connection(("127.0.0.1", hub.port)) as client:
        client.sendall(b"GET /api/models/acme/m HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(12).startswith(b"HTTP/1.1 200")
        live = list(hub._server.live)  # Nagle + delayed ACK would stall every answer ~40 ms
        assert live and all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in live)
    hub.latency(0.5)
    with pytest.raises(httpx2.TimeoutException):
        get_session().get(f"{hub.url}/api/models/acme/m", timeout=0.1)
    hub.latency(0)
    assert raw(hub, "/api/models/acme/m").status_code == 200


def test_rate_limit_headers_and_429(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    hub.rate_limit(2, window=60)
    first = parse_ratelimit_headers(raw(hub, "/api/models/acme/m").headers)
    assert (first.resource_type, first.remaining, first.limit, first.window_seconds) == ("api", 1, 2, 60)
    api.model_info("acme/m")
    with pytest.raises(HfHubHTTPError) as e:
        api.model_info("acme/m")
    info = parse_ratelimit_headers(e.value.response.headers)
    assert e.value.response.status_code == 429 and info.remaining == 0 and 0 < info.reset_in_seconds <= 60
    assert "Retry-After" not in e.value.response.headers  # the Hub sends none; RateLimit says when
    assert raw(hub, "/acme/m/resolve/main/a").status_code == 200  # downloads are another bucket


# ---- namespaces, listing, search, webhooks -------------------------------------------------------
def test_org_and_user_overviews_and_members(hub, api):
    hub.add_org("acme", fullname="Acme Corp", verified=True, followers=12, members=["alice"], details="We build")
    hub.add_user("bob", fullname="Bob B", followers=3, orgs=["acme"])
    hub.add_repo("acme/m1")
    hub.add_repo("acme/m2", private=True)
    hub.add_repo("acme/d", type="dataset")
    hub.add_repo("bob/b")
    org = api.get_organization_overview("acme")
    assert (org.name, org.fullname, org.is_verified, org.num_followers, org.num_users, org.details) == (
        "acme", "Acme Corp", True, 12, 2, "We build")
    assert (org.num_models, org.num_datasets, org.num_spaces) == (1, 1, 0)
    user = api.get_user_overview("bob")
    assert (user.username, user.fullname, user.num_followers, user.num_models) == ("bob", "Bob B", 3, 1)
    assert [o.name for o in user.orgs] == ["acme"] and user.user_type == "user"
    hub.page_size = 1
    assert [u.username for u in api.list_organization_members("acme")] == ["alice", "bob"]
    with pytest.raises(HfHubHTTPError) as e:
        api.get_organization_overview("bob")
    assert e.value.response.status_code == 404 and not isinstance(e.value, RepositoryNotFoundError)


def test_list_models_sorted_by_created_at_with_paging(hub, api):
    for day in (3, 1, 5, 2, 4, 6):
        hub.add_repo(f"acme/m{day}", created_at=f"2024-01-0{day}T00:00:00Z")
    hub.add_repo("other/m9", created_at="2024-02-01T00:00:00Z")
    hub.page_size = 2
    ids = [m.id for m in api.list_models(author="acme", sort="created_at", limit=5)]
    assert ids == ["acme/m6", "acme/m5", "acme/m4", "acme/m3", "acme/m2"]
    assert hub.count(r"^GET /api/models\?") == 3
    assert [m.id for m in api.list_models(search="M9")] == ["other/m9"]
    listed = raw(hub, "/api/models", params={"author": "acme", "limit": 1}).json()[0]
    assert {"_id", "id", "createdAt", "private", "modelId"} <= set(listed)
    assert not {"author", "lastModified", "sha"} & set(listed), "the real list item has none of these"
    expanded = raw(hub, "/api/models", params={"author": "acme", "limit": 1, "expand": "createdAt"}).json()[0]
    assert set(expanded) == {"_id", "id", "createdAt"}


def test_quicksearch(hub):
    hub.add_org("meta-llama", fullname="Meta Llama")
    hub.add_user("llamafan")
    hub.add_repo("meta-llama/Llama-3")
    hub.add_repo("someone/llama-private", private=True)
    r = raw(hub, "/api/quicksearch", params=[("q", "LLAMA"), ("type", "org"), ("type", "user"), ("type", "model")])
    body = r.json()
    assert body["q"] == "LLAMA" and body["datasets"] == [] and body["spaces"] == []
    assert [m["id"] for m in body["models"]] == ["meta-llama/Llama-3"] and body["modelsCount"] == 1
    assert [(o["name"], o["fullname"]) for o in body["orgs"]] == [("meta-llama", "Meta Llama")]
    assert [u["user"] for u in body["users"]] == ["llamafan"] and body["usersCount"] == 1
    assert all(re.fullmatch(r"[0-9a-f]{24}", x["_id"]) for x in body["models"] + body["orgs"] + body["users"])


def test_create_and_list_webhooks(hub):
    hub.add_token(TOKEN, user="hubwatch-bot")
    with pytest.raises(HfHubHTTPError) as e:
        HfApi().create_webhook(url="http://127.0.0.1:9/hook", watched=[{"type": "org", "name": "acme"}])
    assert e.value.response.status_code == 401
    api = HfApi(token=TOKEN)
    hook = api.create_webhook(url="http://127.0.0.1:9/hook", watched=[{"type": "model", "name": "acme/m"}],
                              domains=["repo"], secret="s3cret")
    assert (hook.url, hook.domains, hook.secret, hook.disabled) == ("http://127.0.0.1:9/hook", ["repo"], "s3cret", False)
    assert [w.id for w in api.list_webhooks()] == [hook.id]
    assert hub.webhooks[0]["watched"] == [{"type": "model", "name": "acme/m"}] and hub.webhooks[0]["owner"] == "hubwatch-bot"


# ---- transport and bookkeeping ---------------------------------------------------------------------
def test_request_log_counts_and_records_are_frozen(hub, api):
    hub.add_repo("acme/m", files={"a": "1"})
    api.model_info("acme/m")
    api.list_repo_refs("acme/m")
    raw(hub, "/api/nothing-here")
    assert hub.count() == 3 and hub.count(r"^GET /api/models/acme/m") == 2
    assert [r.status for r in hub.requests] == [200, 200, 404]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hub.requests[0].status = 1
    hub.clear_log()
    assert hub.count() == 0


def test_head_matches_get_and_every_answer_has_request_id(hub):
    hub.add_repo("acme/m", files={"a": "1"})
    get, head = raw(hub, "/api/models/acme/m"), raw(hub, "/api/models/acme/m", "HEAD")
    assert head.content == b"" and head.headers["Content-Length"] == get.headers["Content-Length"]
    missing = raw(hub, "/api/unknown/route")
    assert missing.status_code == 404 and "error" in missing.json() and missing.headers["X-Request-Id"]
    assert raw(hub, "/api/agent-harnesses").json() == {"standardEnvVars": [], "harnesses": {}}
    hub.add_token(TOKEN, user="bot", write=True)
    assert HfApi(token=TOKEN).whoami()["name"] == "bot"


def test_standalone_emulator_binds_before_start():
    with HubEmulator() as emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url) and emu.port > 0
        emu.add_repo("x/y")
        assert get_session().get(f"{emu.url}/api/models/x/y").json()["id"] == "x/y"
        assert not emu.errors
    with pytest.raises(httpx2.ConnectError):
        get_session().get(f"{emu.url}/api/models/x/y", timeout=1)
