"""`hubwatch refs scan` through the real CLI: the JSON contract, --fail-if exit codes, --offline,
look-alikes from [lookalike] protected, hub_state against the Hub emulator (exists, renamed,
missing, unknown), --write-pins and its [pins] include round trip, --from-cache."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from monitor import config as config_mod
from monitor.cli import main
from tests.pins_env import PinsEnv, Run

SHA = "0123456789abcdef0123456789abcdef01234567"
CONTRACT = {"repo", "type", "file", "line", "revision", "pinned", "lookalike_of"}


@pytest.fixture
def env(hub, tmp_path):
    return PinsEnv(tmp_path, hub, None)


def cli(*args: str) -> Run:
    """The CLI without a config file (as a developer runs it in CI)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


def rows(run: Run) -> list[dict]:
    return [json.loads(line) for line in run.out.splitlines() if line.strip()]


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def notebook(*cells: tuple[str, str]) -> str:
    return json.dumps({"cells": [{"cell_type": t, "source": s, "metadata": {}} for t, s in cells],
                       "nbformat": 4, "nbformat_minor": 5})


def test_offline_json_one_object_per_reference(tmp_path):
    src = tree(tmp_path / "proj", {
        "train.py": f'# AutoModel.from_pretrained("evil/comment")\nMODEL = "EleutherAI/pythia-1b"\n'
                    f'm = AutoModel.from_pretrained(MODEL, revision="{SHA}")\n'
                    'd = load_dataset("org/data", revision="v1")\n',
        "explore.ipynb": notebook(("markdown", 'from_pretrained("evil/markdown")'),
                                  ("code", '!pip install x\npipe = pipeline("fill-mask", model="google-bert/bert-base-uncased")')),
        "conf/recipe.yaml": "model_name_or_path: mistralai/Mistral-7B-v0.1\n",
    })
    r = cli("refs", "scan", str(src), "--json", "--offline")
    assert r.code == 0, r
    got = rows(r)
    assert all(CONTRACT <= set(o) and "hub_state" not in o for o in got)
    assert [(Path(o["file"]).name, o["line"], o["repo"], o["type"], o["revision"], o["pinned"], o["lookalike_of"])
            for o in got] == [
        ("recipe.yaml", 1, "mistralai/Mistral-7B-v0.1", "model", None, False, None),
        ("explore.ipynb", 2, "google-bert/bert-base-uncased", "model", None, False, None),
        ("train.py", 3, "EleutherAI/pythia-1b", "model", SHA, True, None),
        ("train.py", 4, "org/data", "dataset", "v1", False, None),
    ]
    assert got[1]["cell"] == 2
    assert "4 reference(s): 3 unpinned" in r.err


def test_text_output_and_fail_if_unpinned(tmp_path):
    src = tree(tmp_path, {"a.py": f'AutoModel.from_pretrained("org/a", revision="{SHA}")\n'})
    r = cli("refs", "scan", str(src), "--offline", "--fail-if", "unpinned")
    assert r.code == 0 and f"model org/a @{SHA} pinned" in r.out
    (tmp_path / "b.py").write_text('AutoModel.from_pretrained("org/b", revision="main")\n')
    r = cli("refs", "scan", str(src), "--offline", "--fail-if", "unpinned")
    assert r.code == 1 and "org/b @main UNPINNED" in r.out


@pytest.mark.parametrize("args", [
    ["--fail-if", "unpinned,typo"], ["--fail-if", ""], ["--fail-if", "missing", "--offline"],
    ["--write-pins", "p.toml", "--offline"]])
def test_usage_errors_exit_2(tmp_path, args):
    r = cli("refs", "scan", str(tmp_path), *args)
    assert r.code == 2 and r.err.startswith("hubwatch: ") and len(r.err.strip().splitlines()) == 1


def test_missing_path_and_no_path_are_usage_errors(tmp_path):
    assert cli("refs", "scan", str(tmp_path / "srcc"), "--offline").code == 2
    assert cli("refs", "scan", "--offline").code == 2


def test_unparsable_files_are_reported_and_never_stop_the_run(tmp_path):
    src = tree(tmp_path, {"bad.py": "def broken(:\n    from_pretrained\n",
                          "bad.ipynb": "{not json, from_pretrained",
                          "bad.yaml": "model_name_or_path: [unclosed\n",
                          "z_good.py": 'AutoModel.from_pretrained("org/good")\n'})
    r = cli("refs", "scan", str(src), "--offline", "--json")
    assert r.code == 0
    assert [o["repo"] for o in rows(r) if "repo" in o] == ["org/good"]
    # fail closed: each file that could not be inspected is an entry of the output too
    assert sorted(Path(o["file"]).name for o in rows(r) if o.get("uninspected")) == ["bad.ipynb", "bad.py", "bad.yaml"]
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "uninspected").code == 1
    problems = [line for line in r.err.splitlines() if line.startswith("hubwatch: refs: /")]
    assert sorted(Path(line.split(": ")[2]).name for line in problems) == ["bad.ipynb", "bad.py", "bad.yaml"]


def test_unresolved_calls_are_counted_and_listed_with_v(tmp_path):
    src = tree(tmp_path, {"a.py": "def f(name):\n    return AutoModel.from_pretrained(name)\n"})
    r = cli("refs", "scan", str(src), "--offline")
    assert r.code == 0 and r.out.endswith("a.py:2: UNRESOLVED from_pretrained: parameter name\n")
    assert "1 unresolved call(s) (-v lists them)" in r.err
    r = cli("refs", "scan", str(src), "--offline", "-v")
    assert "a.py:2: from_pretrained: not resolved (parameter name)" in r.err


def test_lookalike_of_protected_name_offline(env, tmp_path):
    env.extra = '[lookalike]\nprotected = ["EleutherAI", "meta-llama"]\n'
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("EleuterAI/gpt-j-6B")\n'
                                          'AutoModel.from_pretrained("EleutherAI/gpt-j-6b")\n',
                                  "c.yaml": "base_model: meta-IIama/Llama-2-7b-hf\n"})
    r = env.run("refs", "scan", str(src), "--offline", "--json")
    assert r.code == 0, r
    assert [(o["repo"], o["lookalike_of"]) for o in rows(r)] == [
        ("EleuterAI/gpt-j-6B", "EleutherAI"), ("EleutherAI/gpt-j-6b", None), ("meta-IIama/Llama-2-7b-hf", "meta-llama")]
    assert env.hub.count() == 0, "--offline sends no request"
    assert env.run("refs", "scan", str(src), "--offline", "--fail-if", "lookalike").code == 1
    (src / "a.py").unlink()
    (src / "c.yaml").unlink()
    assert env.run("refs", "scan", str(src), "--offline", "--fail-if", "lookalike").code == 0


def test_hub_state_exists_renamed_missing_unknown(env, hub, tmp_path):
    hub.add_repo("org/here")
    hub.add_repo("org/old-name")
    hub.rename_repo("org/old-name", "neworg/new-name")
    hub.add_repo("org/flaky")
    hub.add_repo("org/data", type="dataset")
    hub.fail(r"/api/models/org/flaky/", status=500, times=None)
    src = tree(tmp_path / "src", {"a.py": "\n".join([
        'AutoModel.from_pretrained("org/here")',
        'AutoModel.from_pretrained("ORG/Here")',  # another casing of the same repo: not a rename
        'AutoModel.from_pretrained("org/old-name")',
        'AutoModel.from_pretrained("org/never-existed")',
        'AutoModel.from_pretrained("org/flaky")',
        'load_dataset("org/data")',
        'load_dataset("org/here")',  # a model of that name exists, no dataset does
    ]) + "\n"})
    r = env.run("refs", "scan", str(src), "--json")
    assert r.code == 0, r
    assert [(o["repo"], o["type"], o["hub_state"], o["renamed_to"]) for o in rows(r)] == [
        ("org/here", "model", "exists", None),
        ("ORG/Here", "model", "exists", None),
        ("org/old-name", "model", "renamed", "neworg/new-name"),
        ("org/never-existed", "model", "missing", None),
        ("org/flaky", "model", "unknown", None),
        ("org/data", "dataset", "exists", None),
        ("org/here", "dataset", "missing", None),
    ]
    assert "500" in rows(r)[4]["hub_error"]
    assert hub.count(r"/api/models/org/here/refs") == 1 and hub.count(r"/api/models/ORG/Here/refs") == 0, \
        "one request per distinct repo"
    assert env.run("refs", "scan", str(src), "--fail-if", "missing").code == 1
    assert env.run("refs", "scan", str(src), "--fail-if", "renamed").code == 1


def test_unknown_is_never_missing_fail_if_missing_exits_75(env, hub, tmp_path):
    hub.add_repo("org/flaky")
    hub.fail(r"/api/models/org/flaky/", status=503, times=None)
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/flaky")\n'})
    r = env.run("refs", "scan", str(src), "--fail-if", "missing")
    assert r.code == 75 and "could not answer" in r.err
    hub.clear_faults()
    assert env.run("refs", "scan", str(src), "--fail-if", "missing").code == 0


def test_write_pins_and_include_round_trip(env, hub, tmp_path):
    head = hub.add_repo("org/model")
    v1 = hub.create_tag("org/model", "v1")
    hub.commit("org/model", {"README.md": "new"})
    data_head = hub.add_repo("org/data", type="dataset")
    hub.add_repo("org/old")
    hub.rename_repo("org/old", "org/new")
    src = tree(tmp_path / "src", {"a.py": "\n".join([
        'AutoModel.from_pretrained("org/model", revision="v1")',
        'AutoModel.from_pretrained("org/model")',
        f'AutoModel.from_pretrained("org/model", revision="{SHA}")',
        'AutoModel.from_pretrained("org/model", revision="v1")',  # same pin twice: written once
        'load_dataset("org/data")',
        'AutoModel.from_pretrained("org/old")',
        'AutoModel.from_pretrained("org/gone")',
        'AutoModel.from_pretrained("org/model", revision="no-such-tag")',
    ]) + "\n"})
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--write-pins", str(pins))
    assert r.code == 0, r
    assert "org/gone: not pinned: Hub state missing" in r.err
    assert "no branch or tag 'no-such-tag' on the Hub" in r.err
    main_head = hub.repo_head("org/model")
    assert main_head != head
    env.write()
    text = env.config.read_text().replace('[pins]\n', '[pins]\ninclude = ["pins.toml"]\n', 1)
    env.config.write_text(text)
    settings = config_mod.load(env.config, env={})
    assert [(p.repo, p.type, p.revision, p.track) for p in settings.pin] == [
        ("org/model", "model", v1, "v1"),
        ("org/model", "model", main_head, "main"),
        ("org/model", "model", SHA, None),
        ("org/data", "dataset", data_head, "main"),
        ("org/old", "model", hub.repo_head("org/new"), "main"),
    ]
    # the daemon's check accepts them: a baseline, then an alert when a tracked ref moves
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["once", "-c", str(env.config)]) == 0
        hub.commit("org/data", {"x.csv": "1"}, type="dataset")
        assert main(["once", "-c", str(env.config)]) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["findings", "--json", "-c", str(env.config)]) == 0
    kinds = {(f["kind"], f["subject"]) for f in map(json.loads, out.getvalue().splitlines())}
    # the moved branch alerts; the sha the code names but the Hub lacks, and the renamed repo, too
    assert kinds == {("ref_moved", "datasets/org/data"), ("pin_unreachable", "org/model"), ("repo_renamed", "org/old")}


def test_write_pins_with_the_hub_down_exits_75_and_writes_what_it_knows(env, hub, tmp_path):
    hub.add_repo("org/ok")
    hub.add_repo("org/flaky")
    hub.fail(r"/api/models/org/flaky/", status=500, times=None)
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/ok")\nAutoModel.from_pretrained("org/flaky")\n'})
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--write-pins", str(pins))
    assert r.code == 75 and "org/flaky: not pinned: Hub state unknown" in r.err
    assert 'repo = "org/ok"' in pins.read_text() and "org/flaky" not in pins.read_text()


@pytest.mark.parametrize("include, pins_text, words", [
    ('["absent.toml"]', None, "pins.include[0]: cannot read"),
    ('"pins.toml"', "", "pins.include: must be a list"),
    ('["pins.toml"]', "[[pin]\n", "pins.include[0]:"),
    ('["pins.toml"]', '[[pin]]\nrepo = "a/b"\nrevision = "abc"\n', "pins.toml: pin[0].revision: must be a full 40-hex"),
    ('["pins.toml"]', '[[pin]]\nrepo = "a/b"\ntrack = "main"\n[hub]\nendpoint = "http://x"\n', "pins.toml: hub: unknown key"),
])
def test_bad_include_exits_78_naming_the_key(env, include, pins_text, words):
    env.write()
    if pins_text is not None:
        (env.tmp / "pins.toml").write_text(pins_text)
    env.config.write_text(env.config.read_text().replace("[pins]\n", f"[pins]\ninclude = {include}\n", 1))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check-config", "-c", str(env.config)]) == 78
    assert words in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def _cache(root: Path) -> Path:
    for name, refs, snaps in [("models--EleuterAI--gpt-j-6B", {"main": "a" * 40}, ["a" * 40]),
                              ("datasets--org--data", {"main": "b" * 40, "v2": "c" * 40}, ["b" * 40, "c" * 40])]:
        for ref, sha in refs.items():
            (root / name / "refs").mkdir(parents=True, exist_ok=True)
            (root / name / "refs" / ref).write_text(sha)
        for sha in snaps:
            (root / name / "snapshots" / sha).mkdir(parents=True)
            (root / name / "snapshots" / sha / "config.json").write_text("{}")
    return root


def test_from_cache_lists_the_exact_revisions_this_host_uses(env, tmp_path, monkeypatch):
    env.extra = '[lookalike]\nprotected = ["EleutherAI"]\n'
    cache_dir = _cache(tmp_path / "hf-cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
    r = env.run("refs", "scan", "--from-cache", "--offline", "--json")
    assert r.code == 0, r
    assert [(o["repo"], o["type"], o["revision"], o["pinned"], o["cache_refs"], o["lookalike_of"], o["line"])
            for o in rows(r)] == [
        ("org/data", "dataset", "b" * 40, True, ["main"], None, None),
        ("org/data", "dataset", "c" * 40, True, ["v2"], None, None),
        ("EleuterAI/gpt-j-6B", "model", "a" * 40, True, ["main"], "EleutherAI", None),
    ]
    assert rows(r)[0]["file"] == str(cache_dir / "datasets--org--data" / "snapshots" / ("b" * 40))
    other = _cache(tmp_path / "other")
    r2 = env.run("refs", "scan", "--from-cache", "--cache-dir", str(other), "--offline", "--json")
    assert [o["file"].startswith(str(other)) for o in rows(r2)] == [True] * 3


def test_from_cache_write_pins_keeps_the_cached_commit_and_tracks_its_ref(env, hub, tmp_path):
    hub.add_repo("org/data", type="dataset")
    cache_dir = _cache(tmp_path / "hf-cache")
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", "--from-cache", "--cache-dir", str(cache_dir), "--write-pins", str(pins), "--json")
    assert r.code == 0, r
    assert {o["repo"]: o["hub_state"] for o in rows(r)} == {"org/data": "exists", "EleuterAI/gpt-j-6B": "missing"}
    text = pins.read_text()
    assert f'revision = "{"b" * 40}"\ntrack = "main"' in text and f'revision = "{"c" * 40}"\ntrack = "v2"' in text
    assert "EleuterAI" not in text.split("\n", 1)[1]


def test_gated_private_and_disabled_repos(env, hub, tmp_path):
    """Gated and disabled repos exist (we just may not read them); a private repo answers like a
    missing one to us, which is what the code loading it anonymously would meet too."""
    hub.add_repo("org/gated")
    hub.set_gated("org/gated", "manual")
    hub.add_repo("org/disabled")
    hub.set_disabled("org/disabled")
    hub.add_repo("org/private", private=True)
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/gated")\n'
                                          'AutoModel.from_pretrained("org/disabled")\n'
                                          'AutoModel.from_pretrained("org/private")\n'})
    r = env.run("refs", "scan", str(src), "--json")
    assert [(o["repo"], o["hub_state"]) for o in rows(r)] == [
        ("org/gated", "exists"), ("org/disabled", "exists"), ("org/private", "missing")]


def test_legacy_name_redirect_is_renamed_and_pinned_under_its_canonical_id(env, hub, tmp_path):
    head = hub.add_repo("openai-community/gpt2")
    hub.add_redirect("gpt2", "openai-community/gpt2")
    src = tree(tmp_path / "src", {"a.py": 'AutoTokenizer.from_pretrained("gpt2")\n'})
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--json", "--write-pins", str(pins))
    assert r.code == 0, r
    assert [(o["repo"], o["hub_state"], o["renamed_to"]) for o in rows(r)] == [
        ("gpt2", "renamed", "openai-community/gpt2")]
    assert f'repo = "openai-community/gpt2"\ntype = "model"\nrevision = "{head}"\ntrack = "main"' in pins.read_text()


def test_a_rejected_token_is_unknown_never_missing(env, hub, tmp_path):
    hub.add_repo("org/m")
    env.token = hub.add_token("hf_refs_scan_token")
    hub.revoke_token("hf_refs_scan_token")
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/m")\n'})
    r = env.run("refs", "scan", str(src), "--json", "--fail-if", "missing")
    assert r.code == 78 and "the Hub rejected the token from" in r.err, "a config problem, as for once"
    (o,) = rows(r)
    assert o["hub_state"] == "unknown" and "401" in o["hub_error"]
    assert "hf_refs_scan_token" not in r.out + r.err


def test_pins_file_stays_valid_toml_whatever_the_file_names(env, hub, tmp_path):
    hub.add_repo("org/m")
    src = tree(tmp_path / "src", {'we"ird\rname\x1b.py': 'AutoModel.from_pretrained("org/m")\n'})
    pins = tmp_path / "pins\nfile.toml"
    assert env.run("refs", "scan", str(src), "--write-pins", str(pins)).code == 0
    import tomllib

    assert tomllib.loads(pins.read_text())["pin"] == [{"repo": "org/m", "type": "model",
                                                       "revision": hub.repo_head("org/m"), "track": "main"}]


def test_calls_through_import_aliases_are_found_by_the_cli(tmp_path):
    src = tree(tmp_path / "proj", {
        "serve.py": "from transformers import pipeline as p\nimport huggingface_hub as hh\n"
                    "from transformers import AutoModel as AM\n"
                    'pipe = p("text-generation", model="org/aliased-pipe")\n'
                    'hh.snapshot_download("org/aliased-snap")\n'
                    f'm = AM.from_pretrained("org/aliased-auto", revision="{SHA}")\n',
        "nb.ipynb": notebook(("code", "from datasets import load_dataset as ld\n"), ("code", 'ds = ld("org/nb")\n')),
    })
    r = cli("refs", "scan", str(src), "--json", "--offline")
    assert r.code == 0, r
    assert [(Path(o["file"]).name, o["line"], o["repo"], o["type"], o["via"], o["pinned"]) for o in rows(r)] == [
        ("nb.ipynb", 1, "org/nb", "dataset", "load_dataset", False),
        ("serve.py", 4, "org/aliased-pipe", "model", "pipeline", False),
        ("serve.py", 5, "org/aliased-snap", "model", "snapshot_download", False),
        ("serve.py", 6, "org/aliased-auto", "model", "from_pretrained", True),
    ]


def test_write_pins_skips_a_track_the_config_would_refuse(env, hub, tmp_path):
    """A written pin must load: `.` passes the character rule but is a path segment to config.py."""
    hub.add_repo("org/model")
    hub.create_tag("org/model", ".")
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/model", revision=".")\n'})
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--write-pins", str(pins))
    assert r.code == 0, r
    assert "org/model: not pinned: revision '.' is not a branch or tag name" in r.err
    assert "[[pin]]" not in pins.read_text()
