"""Ranged reads of Hub files (monitor/hub/files.py) against the emulator and its CDN origin.

One resolve per file, every range at the CDN location, the token never at the CDN, a 200 answer
to a Range request cut at the byte cap, caps on files and bytes, and no signed URL in any log or
error.
"""

from __future__ import annotations

import io
import logging

import pytest

from monitor import logs
from monitor.config import HubSettings, Secret
from monitor.content.reader import ContentReadError
from monitor.hub import files
from monitor.hub.budget import Priority
from monitor.hub.client import HubClient
from monitor.hub.files import ContentLimits, ContentSession
from monitor.hub.models import RepoId
from tests.emulator.cdn import Virtual

REPO = RepoId("model", "acme/m")
TOKEN = "hf_content_reader_token"
BIG = bytes(range(256)) * 4096  # 1 MiB, LFS by its extension


@pytest.fixture
def session(hub):
    hub.add_token(TOKEN, user="reader")
    hub.add_repo("acme/m", files={"pytorch_model.bin": BIG, "config.json": '{"a": 1}',
                                  "huge.bin": Virtual([(10, b"0123456789"), (5 * 10**9, None), (4, b"TAIL")])})
    client = HubClient(HubSettings(endpoint=hub.url, retries=0, token=Secret(TOKEN)))
    return ContentSession.for_client(client)


def test_one_resolve_then_ranges_at_the_cdn_without_the_token(hub, session):
    r = session.open(REPO, "main", "pytorch_model.bin")
    assert r.read(0, 4) == BIG[:4]
    assert r.size == len(BIG)  # X-Linked-Size on the redirect
    assert r.read(len(BIG) - 22, 22) == BIG[-22:]
    assert r.read(300_000, 200_000) == BIG[300_000:500_000]
    assert r.read(10, 6) == BIG[10:16]  # inside the first window: no new request
    assert hub.count(r"GET /acme/m/resolve/main/pytorch_model\.bin") == 1
    assert hub.cdn.requests == 3 and r.requests == 4
    assert hub.cdn.auth_seen == []
    assert all(rec.range and rec.accept_encoding == "identity" for rec in hub.cdn.log)
    assert [rec.authenticated for rec in hub.requests if "/resolve/" in rec.path] == [True]


def test_a_5gb_file_is_read_by_its_ends_only(hub, session):
    r = session.open(REPO, "main", "huge.bin")
    assert r.read(0, 10) == b"0123456789"
    assert r.read(r.size - 4, 4) == b"TAIL"
    assert r.size == 5 * 10**9 + 14
    assert hub.cdn.bytes_served <= 2 * files.READ_AHEAD and session.fetched == hub.cdn.bytes_served


def test_a_200_answer_to_a_range_request_is_cut_at_the_byte_cap(hub, session):
    hub.cdn.ignore_range = True
    session.limits = ContentLimits(file_bytes=100_000)
    r = session.open(REPO, "main", "pytorch_model.bin")
    assert r.read(5, 10) == BIG[5:15]
    assert session.fetched == 100_000 <= hub.cdn.bytes_served
    with pytest.raises(ContentReadError) as e:
        r.read(500_000, 10)
    assert e.value.permanent and "byte cap" in str(e.value)
    assert hub.cdn.requests == 1


def test_check_byte_cap_and_file_cap(hub, session):
    session.limits = ContentLimits(files=2, check_bytes=100_000)
    a = session.open(REPO, "main", "pytorch_model.bin")
    a.read(0, 60_000)
    with pytest.raises(ContentReadError, match="byte cap"):
        a.read(500_000, 60_000)
    session.open(REPO, "main", "config.json")
    with pytest.raises(ContentReadError, match="file cap"):
        session.open(REPO, "main", "huge.bin")


@pytest.mark.parametrize("cache", [False, True])
def test_small_files_direct_or_through_resolve_cache_keep_the_token_on_the_hub(hub, session, cache):
    hub.resolve_cache = cache
    r = session.open(REPO, "main", "config.json")
    assert r.read(0, 100) == b'{"a": 1}' and r.read(1, 3) == b'"a"'
    assert hub.cdn.requests == 0
    assert all(rec.authenticated for rec in hub.requests)
    assert hub.count(r"/resolve/") == 1 and hub.count(r"/api/resolve-cache/") == (1 if cache else 0)


def test_failures_say_whether_a_retry_may_help_and_never_show_the_signed_url(hub, session):
    stream = io.StringIO()
    logs.configure(verbosity=3, stream=stream)  # -vvv: even httpx's request lines are shown
    hub.cdn.fail_status = 503
    with pytest.raises(ContentReadError) as e:
        session.open(REPO, "main", "pytorch_model.bin").read(0, 10)
    assert not e.value.permanent
    hub.cdn.fail_status = None
    with pytest.raises(ContentReadError) as e:
        session.open(REPO, "main", "nope.bin").read(0, 10)
    assert e.value.permanent
    hub.set_gated("acme/m", "manual")
    anonymous = ContentSession(hub.url, {})
    with pytest.raises(ContentReadError) as e:
        anonymous.open(REPO, "main", "pytorch_model.bin").read(0, 10)
    assert e.value.permanent and "gated" in str(e.value)
    text = stream.getvalue()
    logs.configure(verbosity=0, stream=io.StringIO())
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().handlers = [h for h in logging.getLogger().handlers if not getattr(h, "_hubwatch", False)]
    assert hub.cdn.url in text and "Signature" not in text and "?***" in text


def test_content_reads_of_a_hub_event_draw_on_the_events_row(hub):
    """A webhook's check (client.for_events()) reads content at the lowest row too: a flood of
    events cannot spend the downloads the scheduled pin scan's content inspection needs."""
    from monitor.hub import session as hub_session

    hub.add_repo("acme/m", files={"config.json": '{"a": 1}'})
    client = HubClient(HubSettings(endpoint=hub.url, retries=0)).for_events()
    ContentSession.for_client(client).open(REPO, "main", "config.json").read(0, 5)
    b = hub_session.BUDGET._buckets["resolvers"]
    assert b.rows == {Priority.EVENTS: 1}, b.rows


def test_a_429_on_a_download_pauses_downloads_only(hub, session):
    from monitor.hub import session as hub_session

    hub.spend_window(120, identity="reader", bucket="resolvers")
    with pytest.raises(ContentReadError):
        session.open(REPO, "main", "config.json").read(0, 5)
    assert hub_session.STATS.paused_for("resolvers") > 0 and hub_session.STATS.paused_for("api") == 0
    sent = len(hub.requests)
    with pytest.raises(ContentReadError) as e:
        session.open(REPO, "main", "pytorch_model.bin").read(0, 5)
    assert "paused" in str(e.value) and len(hub.requests) == sent, "a paused bucket sends nothing"


def test_content_reads_spend_the_resolvers_bucket_not_the_api_one(hub, session):
    """Issue 17 (rate-limit buckets) x issue 14: content reads draw on the process's one budget in
    its `resolvers` bucket (where the Hub meters downloads, and what `status` and /metrics show),
    never on the api bucket that pin refs need."""
    from monitor.hub import session as hub_session

    budget = hub_session.BUDGET
    hub.rate_limit(3, window=300, bucket="resolvers")  # the Hub says 3 a window: we plan for 95%, 2
    api_used = budget.snapshot("api").used
    r = session.open(REPO, "main", "pytorch_model.bin")
    r.read(0, 10)  # the resolve (its answer tells the bucket's quota) and one range at the CDN
    assert budget.snapshot("resolvers").used == 2 and budget.snapshot("resolvers").quota == 3
    assert budget.room(Priority.PINS, "api") > 0
    with pytest.raises(ContentReadError) as e:
        session.open(REPO, "main", "config.json").read(0, 10)
    assert not e.value.permanent and "budget" in str(e.value)
    assert budget.snapshot("api").used == api_used, "content reads never spend the API budget"
    assert session.transient == 1


def test_the_issues_caps_are_the_defaults():
    """Issue 14's numbers: 200 files and 512 MB per check, 16 MB per file (a GGUF header's cap too)."""
    from monitor.content.reader import ContentCaps
    from monitor.jobs.content_check import ContentChecker

    assert ContentChecker(None).limits == ContentLimits()
    assert (ContentLimits().files, ContentLimits().check_bytes, ContentLimits().file_bytes) == (
        200, 512 * 1024 * 1024, 16 * 1024 * 1024)
    assert ContentCaps().header_bytes == 16 * 1024 * 1024 and ContentCaps().pickle_bytes == 1_000_000
