"""Fuzzing the edges where outside data comes in: the config file, every Hub answer, stored state.

The contract is narrow on purpose. The config loader either succeeds or raises one `ConfigError`
of one line (an operator reads it in a terminal or a systemd journal). A Hub parser either returns
a value or raises `ValueError`; the client around them turns anything unexpected into `Transient`
("unknown", never "gone"). Stored repo state that cannot be read starts fresh instead of crashing.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import config as config_mod
from monitor.config import HubSettings
from monitor.detect.state import RepoState
from monitor.errors import ConfigError, Transient
from monitor.hub import namespaces, parse
from monitor.hub.client import HubClient
from monitor.hub.models import Commit, Refs, RepoId, RepoInfo
from monitor.hub.namespaces import Namespace, NamespaceClient, RepoStub

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
E2E = settings(max_examples=60, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SHA = "0123456789abcdef0123456789abcdef01234567"
shas = st.sampled_from([SHA, SHA.upper(), SHA[:39], "f" * 40]) | st.text(alphabet="0123456789abcdef", min_size=38,
                                                                             max_size=41)

# --- JSON the Hub could send ------------------------------------------------------------------------

HUB_KEYS = ["branches", "tags", "converts", "name", "ref", "targetCommit", "_id", "id", "modelId", "sha", "author",
            "createdAt", "lastModified", "private", "gated", "disabled", "siblings", "rfilename", "blobId", "size",
            "lfs", "sha256", "securityRepoStatus", "scansDone", "filesWithIssues", "path", "title", "message",
            "date", "authors", "user", "fullname", "isVerified", "numFollowers", "numModels", "numDatasets",
            "numSpaces", "numUsers", "details", "orgs", "users", "models", "q", "type"]
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | shas | st.sampled_from(["main", "v1", "auto", "manual", "", "org/model"]))
keys = st.sampled_from(HUB_KEYS) | st.text(max_size=6)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(keys, children, max_size=6), max_leaves=25)


def ref_item():
    return st.fixed_dictionaries({"name": json_values | st.text(max_size=8), "targetCommit": shas | json_values},
                                 optional={"ref": json_values})


refs_docs = st.fixed_dictionaries({"branches": st.lists(ref_item(), max_size=4) | json_values,
                                   "tags": st.lists(ref_item(), max_size=4) | json_values},
                                  optional={"converts": json_values, "pullRequests": json_values})
sibling = st.fixed_dictionaries({"rfilename": st.text(max_size=10) | json_values},
                                optional={"blobId": json_values, "size": json_values,
                                          "lfs": st.fixed_dictionaries({}, optional={"sha256": json_values,
                                                                                     "size": json_values})
                                          | json_values})
info_docs = st.fixed_dictionaries(
    {"id": st.just("org/model") | json_values, "sha": shas | json_values},
    optional={"_id": json_values, "createdAt": json_values, "lastModified": json_values, "private": json_values,
              "gated": json_values, "disabled": json_values,
              "siblings": st.lists(sibling, max_size=4) | json_values,
              "securityRepoStatus": st.fixed_dictionaries({}, optional={
                  "filesWithIssues": st.lists(json_values | st.fixed_dictionaries({"path": json_values}),
                                              max_size=3) | json_values}) | json_values})
commit_docs = st.lists(st.fixed_dictionaries({"id": shas | json_values}, optional={
    "title": json_values, "date": json_values,
    "authors": st.lists(st.fixed_dictionaries({}, optional={"user": json_values}) | json_values,
                        max_size=3) | json_values}), max_size=4) | json_values
overview_docs = st.fixed_dictionaries({}, optional={k: json_values for k in (
    "name", "user", "fullname", "isVerified", "numFollowers", "numModels", "numDatasets", "numSpaces", "numUsers",
    "createdAt", "details")}) | json_values
search_docs = st.fixed_dictionaries({}, optional={
    "orgs": scalars | st.lists(st.fixed_dictionaries({}, optional={"name": json_values}) | json_values, max_size=3)
    | json_values,
    "users": scalars | st.lists(st.fixed_dictionaries({}, optional={"user": json_values}) | json_values, max_size=3)
    | json_values}) | json_values


def value_or_value_error(fn, *args):
    try:
        return fn(*args)
    except ValueError:
        return None


@FUZZ
@given(data=refs_docs | json_values)
def test_parse_refs_returns_refs_or_value_error(data):
    out = value_or_value_error(parse.refs, data, "org/model")
    if out is not None:
        assert isinstance(out, Refs)
        assert all(isinstance(n, str) and len(s) == 40 for n, s in out.branches + out.tags)
        out.head("main")  # what the checker calls next must work on any parsed value


@FUZZ
@given(data=info_docs | json_values)
def test_parse_repo_info_returns_info_or_value_error(data):
    out = value_or_value_error(parse.repo_info, data)
    if out is not None:
        assert isinstance(out, RepoInfo) and len(out.sha) == 40
        assert all(isinstance(f.path, str) and isinstance(f.content_id, str) for f in out.files)
        hash(out)  # frozen and hashable: nothing unhashable leaked in from the answer


@FUZZ
@given(data=commit_docs)
def test_parse_commits_returns_commits_or_value_error(data):
    out = value_or_value_error(parse.commits, data)
    if out is not None:
        assert all(isinstance(c, Commit) and all(isinstance(a, str) for a in c.authors) for c in out)


@FUZZ
@given(data=overview_docs, kind=st.sampled_from(["org", "user"]))
def test_parse_namespace_overview_or_value_error(data, kind):
    out = value_or_value_error(namespaces._namespace, data, kind)
    if out is not None:
        assert isinstance(out, Namespace) and out.name
        assert out.followers is None or (isinstance(out.followers, int) and out.followers >= 0)
        assert out.created_at is None or isinstance(out.created_at, str)


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={"id": json_values | st.text(max_size=10), "author": json_values,
                                               "createdAt": json_values, "_id": json_values}) | json_values,
       rtype=st.sampled_from(["model", "dataset", "space"]))
def test_parse_repo_stub_or_value_error(data, rtype):
    out = value_or_value_error(namespaces._stub, rtype, data)
    if out is not None:
        assert isinstance(out, RepoStub) and isinstance(out.author, str) and isinstance(out.name, str)


@FUZZ
@given(data=search_docs)
def test_parse_quicksearch_or_value_error(data):
    out = value_or_value_error(namespaces._search_hits, data)
    if out is not None:
        assert all(kind in ("org", "user") and isinstance(name, str) for kind, name in out)


# --- stored state -----------------------------------------------------------------------------------

state_keys = st.sampled_from([f for f in RepoState.__dataclass_fields__]) | st.text(max_size=6)


@FUZZ
@given(text=st.none() | st.text() | st.builds(json.dumps, json_values)
       | st.builds(json.dumps, st.dictionaries(state_keys, json_values, max_size=8)))
def test_repo_state_from_json_never_raises(text):
    state = RepoState.from_json(text)
    assert isinstance(state, RepoState)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 50_000, "1" * 10_000, "\x00", "\ud800", "{}" * 3])
def test_repo_state_from_json_pathological(text):
    assert isinstance(RepoState.from_json(text), RepoState)


# --- the config file --------------------------------------------------------------------------------

# Files a *_file key may name (created next to the config): text, empty, binary, a directory, absent.
SECRET_FILES = ["token.txt", "empty.txt", "binary.bin", "hook.txt", "subdir", "missing.txt", "/dev/null",
                "../token.txt", "", "a\x00b"]

toml_scalars = (st.text(max_size=10) | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats()
                | st.sampled_from(["", " ", "\n", "a\nb", "\u2028", "é", "inf", "nan"]))
toml_values = st.recursive(toml_scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)


def mostly(good: st.SearchStrategy, junk: st.SearchStrategy = toml_values) -> st.SearchStrategy:
    """Plausible values 4 times in 5, so documents get past the first key often enough to test the rest."""
    return st.integers(0, 4).flatmap(lambda i: junk if i == 0 else good)


durations = mostly(st.sampled_from(["10s", "1m", "10m", "1h", "1d", "0.5s", " 5m ", 30, 2.5, 86400 * 366,
                                    "366d", "367d", "0s", "-1m", "1w", "10", "1e3s", "99999999999999999d",
                                    float("inf"), float("nan"), 1e300, 0, -5]))
ints = mostly(st.sampled_from([0, 1, 2, 8, 100, 256, 257, 1024, 65535, 1_000_000, -1, True, 2**63 - 1]))
urls = mostly(st.sampled_from(["http://127.0.0.1:1", "https://hooks.slack.com/services/T/B/x", "ftp://x",
                               "https://", " https://example.com/ ", "http://a b"]))
files = mostly(st.sampled_from(SECRET_FILES))
names = mostly(st.lists(st.sampled_from(["meta-llama", "openai", "bad name", "", "a" * 97, "x.y_z"]), max_size=3))
TABLES = {
    "hub": {"endpoint": urls, "token_file": files, "timeout": durations, "concurrency": ints, "retries": ints,
            "retry_wait": durations},
    "state": {"path": mostly(st.sampled_from(["state.db", "/tmp/x/state.db", "", "sub/state.db"]))},
    "pins": {"every": durations, "metadata_every": durations, "degraded_after": durations,
             "unavailable_after": ints, "jitter": mostly(st.sampled_from([0, "0", "30s", "1m", -1]))},
    "alerts": {"every": durations, "min_interval": mostly(st.sampled_from([0, "", "1s", "0s"])) | durations,
               "timeout": durations},
    "slack": {"webhook_url": urls, "webhook_url_file": files, "signing_secret_file": files},
    "webhook": {"url": urls, "url_file": files},
    "lookalike": {"protected": names, "allow": names, "every": durations, "probe_budget": ints,
                  "reprobe_after": durations},
    "http": {"listen": mostly(st.sampled_from(["127.0.0.1:8787", "[::1]:0", "localhost:0", "host:99999",
                                               ":80", "127.0.0.1"])), "max_body": ints},
    "hub_webhook": {"secret_file": files},
    "limits": {"hub_requests_per_5min": ints},
}
PIN = {"repo": mostly(st.sampled_from(["org/model", "Org/Model.v2", "a_b/c-d.e"]),
                      st.sampled_from(["a--b/c", "bad repo", "a/b/c", "model", "-a/b", "a/b.git", "x" * 97 + "/y"])
                      | toml_values),
       "type": mostly(st.sampled_from(["model", "dataset", "space", "Model", ""])),
       "revision": mostly(st.sampled_from([SHA, SHA.upper(), SHA[:39], "main"])),
       "track": mostly(st.sampled_from(["main", "v1.0", "refs/heads/main", "../x", "-x", "a..b", "/x"]))}


def tstr(text: str) -> str:
    """A TOML basic string (JSON's, minus \\u surrogate pairs, which TOML rejects; DEL escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return tstr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{tstr(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def table_lines(draw, spec: dict, required: tuple[str, ...] = ()) -> list[str]:
    chosen = list(required) + draw(st.lists(st.sampled_from(sorted(set(spec) - set(required))), unique=True))
    lines = [f"{tstr(k)} = {toml_value(draw(spec[k]))}" for k in chosen]
    if draw(st.integers(0, 9)) == 0:  # now and then a key nobody knows, with any name at all
        lines.append(f"{tstr(draw(st.text(max_size=6)))} = {toml_value(draw(toml_values))}")
    return lines


@st.composite
def config_documents(draw) -> str:
    lines = []
    for table in draw(st.lists(st.sampled_from(sorted(TABLES)), unique=True, max_size=6)):
        lines += [f"[{table}]", *table_lines(draw, TABLES[table])]
    if draw(st.integers(0, 9)) == 0:
        lines += [f"[{tstr(draw(st.text(max_size=5)))}]", "x = 1"]
    pins = draw(st.integers(0, 3))
    for _ in range(pins):
        lines += ["[[pin]]", *table_lines(draw, PIN, required=("repo",))]
    if not pins and draw(st.booleans()):
        lines.insert(0, f"pin = {toml_value(draw(toml_values))}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def config_dir():
    with tempfile.TemporaryDirectory(prefix="hubwatch-fuzz-") as d:
        root = Path(d) / "etc"
        root.mkdir()
        (Path(d) / "token.txt").write_text("hf_token\n")
        (root / "token.txt").write_text("hf_token\n")
        (root / "empty.txt").write_text("")
        (root / "binary.bin").write_bytes(b"\xff\xfe\x00SQLite format 3\x00\x80")
        (root / "hook.txt").write_text("https://hooks.slack.com/services/T/B/secret\n")
        (root / "subdir").mkdir()
        yield root


def assert_config_contract(path: Path) -> None:
    try:
        s = config_mod.load(path, env={})
    except ConfigError as e:
        text = str(e)
        assert text and "\n" not in text and len(text.splitlines()) == 1, repr(text)
        return
    durations = [s.hub.timeout, s.hub.retry_wait, s.pins.every, s.pins.metadata_every, s.pins.degraded_after,
                 s.pins.jitter, s.alerts.every, s.alerts.min_interval, s.alerts.timeout, s.lookalike.every,
                 s.lookalike.reprobe_after]
    # A loaded config must be usable: the scheduler and sleeps choke on inf / astronomically long waits.
    assert all(math.isfinite(d) and 0 <= d < 10 * 365 * 86400 for d in durations), durations


@FUZZ
@given(doc=config_documents())
def test_config_load_structured_documents(doc, config_dir):
    path = config_dir / "config.toml"
    path.write_text(doc, encoding="utf-8")
    assert_config_contract(path)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_config_load_arbitrary_bytes(raw, config_dir):
    path = config_dir / "config.toml"
    path.write_bytes(raw)
    assert_config_contract(path)


@pytest.mark.parametrize("doc", [
    "a = " + "[" * 5000,
    "a = " + "{b = " * 5000,
    '["a\\nb"]\nx = 1\n',
    '"k\\u2028ey" = 1\n',
    '[hub]\ntoken_file = "binary.bin"\n',
    '[hub]\ntoken_file = "a\\u0000b"\n',
    '[pins]\nevery = inf\n',
    '[pins]\nevery = 1e300\n',
    '[alerts]\ntimeout = "99999999999999999d"\n',
])
def test_config_pathological_documents(doc, config_dir):
    path = config_dir / "config.toml"
    path.write_text(doc, encoding="utf-8")
    assert_config_contract(path)


# --- the client end to end, on whatever the Hub sends ---------------------------------------------

bodies = (st.builds(lambda v: json.dumps(v).encode(), refs_docs | info_docs | commit_docs | json_values)
          | st.binary(max_size=60) | st.sampled_from([b"", b"null", b"[" * 5000, b'{"a":' * 3000, b"\xff\xfe"]))


@E2E
@given(body=bodies, status=st.sampled_from([200, 200, 200, 201, 203, 500]),
       call=st.sampled_from(["refs", "info", "history", "overview", "search"]))
def test_client_answers_a_value_or_transient(hub, body, status, call):
    hub.clear_faults()
    client = HubClient(HubSettings(endpoint=hub.url, timeout=5.0, retries=0, retry_wait=0.01))
    repo = RepoId("model", "org/model")
    hub.respond(None, status, body, times=None)
    try:
        if call == "refs":
            assert isinstance(client.refs(repo), Refs)
        elif call == "info":
            assert isinstance(client.info(repo, "main"), RepoInfo)
        elif call == "history":
            client.history(repo, "main", max_pages=1)
        elif call == "overview":
            out = NamespaceClient(client).overview("org")
            assert out is None or isinstance(out, Namespace)
        else:
            NamespaceClient(client).quicksearch("org")
    except Transient:
        pass
    assert not hub.errors


@pytest.mark.parametrize("status", [429, 500, 502])
@pytest.mark.parametrize("body", [b"null", b"[]", b'"down"', b"7", b'{"errors": 5}', b'{"errors": [5]}',
                                  b'{"error": {"nested": []}}', b"\xff\xfe<html>", b"[" * 5000, b""])
def test_error_answers_huggingface_hub_cannot_format_are_transient(hub, status, body):
    """huggingface_hub builds its error message from the body, and chokes on some: still "unknown"."""
    client = HubClient(HubSettings(endpoint=hub.url, timeout=5.0, retries=0, retry_wait=0.01))
    hub.respond(None, status, body, times=None)
    with pytest.raises(Transient):
        client.refs(RepoId("model", "org/model"))
    assert not hub.errors
