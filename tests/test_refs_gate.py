"""`refs scan` as a CI gate, through the real CLI: fail closed (unresolved / uninspected entries,
--fail-if unresolved,uninspected,remote-code, unpinned tripping on unresolved loads), waivers
(inline `# hubwatch: ignore[...]`, --baseline), SARIF 2.1.0 validated against the vendored schema,
the pre-commit hook, --protected, the edges (special files, symlinks, FIFOs, notebook cells in
pins comments, kernels), resolution like a reader and the labelled set's scores."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.test_refs_cli import SHA, cli, env, notebook, rows, tree  # noqa: F401 - env is a fixture

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif" / "sarif-schema-2.1.0.json").read_text())


def sarif(*args: str) -> tuple[int, dict]:
    r = cli("refs", "scan", *args, "--format", "sarif")
    doc = json.loads(r.out)
    jsonschema.validate(doc, SCHEMA)  # every SARIF output is checked against SARIF 2.1.0
    return r.code, doc


# -- fail closed ---------------------------------------------------------------------------------
def test_an_unresolved_load_is_an_entry_and_fails_unpinned_and_unresolved(tmp_path):
    src = tree(tmp_path, {"a.py": "import sys\nAutoModel.from_pretrained(sys.argv[1])\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1, "an unresolved load may be unpinned: the gate must not pass it"
    assert rows(r) == [{"unresolved": True, "file": str(src / "a.py"), "line": 2, "call": "from_pretrained",
                        "reason": "subscript"}]
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "unresolved").code == 1
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike").code == 0


def test_a_file_that_does_not_parse_is_uninspected_and_fails_closed(tmp_path):
    src = tree(tmp_path, {"a.py": 'AutoModel.from_pretrained("org/m", revision="' + SHA + '")\n',
                          "b.py": "def broken(:\n    AutoModel.from_pretrained('org/x')\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1
    assert [o for o in rows(r) if o.get("uninspected")] == [
        {"uninspected": True, "file": str(src / "b.py"), "reason": "not valid Python (line 1: invalid syntax)"}]
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "uninspected").code == 1
    (src / "b.py").unlink()
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "unpinned,uninspected,unresolved").code == 0


def test_what_precedes_a_syntax_error_is_read_and_the_file_still_listed(tmp_path):
    cell = 'model = AutoModelForCausalLM.from_pretrained("google/gemma-2-2b")\n\ntrainer = Trainer(model=model, ...)\n'
    src = tree(tmp_path, {"n.ipynb": notebook(("code", cell)),
                          "a.py": 'AutoModel.from_pretrained("org/before")\ndef broken(:\n    pass\n'})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "uninspected")
    assert r.code == 1
    got = rows(r)
    assert [(Path(o["file"]).name, o["repo"]) for o in got if "repo" in o] == [
        ("a.py", "org/before"), ("n.ipynb", "google/gemma-2-2b")]
    assert sorted(o["reason"] for o in got if o.get("uninspected")) == [
        "cell 1: not valid Python (line 3: positional argument follows keyword argument) (read up to line 2)",
        "not valid Python (line 2: invalid syntax) (read up to line 1)"]


def test_an_unresolved_revision_is_never_null(tmp_path):
    src = tree(tmp_path, {"a.py": "def f(rev):\n    return AutoModel.from_pretrained('org/m', revision=rev)\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1
    (got,) = rows(r)
    assert got["revision"] == {"unresolved": "rev"} and got["pinned"] is False


def test_remote_code_condition(tmp_path):
    src = tree(tmp_path, {"a.py": f'AutoModel.from_pretrained("org/a", trust_remote_code=True, revision="{SHA}")\n'
                                  'AutoModel.from_pretrained("org/b", revision="v1")\n'})
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "remote-code").code == 0
    (src / "b.py").write_text('AutoModel.from_pretrained("org/c", trust_remote_code=True, revision="main")\n')
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "remote-code")
    assert r.code == 1
    assert [(o["repo"], o.get("remote_code")) for o in rows(r)] == [("org/a", True), ("org/b", None), ("org/c", True)]
    # evaluate.load runs the metric's code from a Space: remote code unless pinned
    (src / "b.py").write_text('import evaluate\nevaluate.load("accuracy")\n')
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "remote-code")
    assert r.code == 1 and ("evaluate-metric/accuracy", "space") in [(o["repo"], o["type"]) for o in rows(r)]


def test_inline_ignore_waives_only_what_it_names_and_stays_listed(tmp_path):
    src = tree(tmp_path, {"a.py": 'AutoModel.from_pretrained("org/a")  # hubwatch: ignore[unpinned]\n'})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 0 and rows(r)[0]["suppressed"] == ["unpinned"]
    assert "(suppressed inline: unpinned)" in cli("refs", "scan", str(src), "--offline").out
    r = cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike", "--protected", "org")
    assert r.code == 0  # "org" is the protected name itself, not a look-alike
    (src / "a.py").write_text('AutoModel.from_pretrained("orq/a")  # hubwatch: ignore[unpinned]\n')
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike", "--protected", "org").code == 1


def test_baseline_adopts_the_gate_on_an_existing_codebase(tmp_path):
    src = tree(tmp_path / "src", {"a.py": 'import sys\nAutoModel.from_pretrained("org/a")\n'
                                           'AutoModel.from_pretrained(sys.argv[1])\n'})
    base = tmp_path / "baseline.json"
    r = cli("refs", "scan", str(src), "--offline", "--write-baseline", str(base))
    assert r.code == 0 and base.is_file()
    r = cli("refs", "scan", str(src), "--offline", "--json", "--baseline", str(base),
            "--fail-if", "unpinned,unresolved")
    assert r.code == 0, r
    assert [o.get("baselined") for o in rows(r)] == [["unpinned"], ["unresolved", "unpinned"]]
    assert "waived (inline or baseline)" in r.err
    # lines move: the baseline still holds; a new load is not in it
    (src / "a.py").write_text('import sys\n\n\nAutoModel.from_pretrained("org/a")\n'
                              'AutoModel.from_pretrained(sys.argv[1])\nAutoModel.from_pretrained("org/new")\n')
    r = cli("refs", "scan", str(src), "--offline", "--baseline", str(base), "--fail-if", "unpinned")
    assert r.code == 1 and "org/new @(default branch) UNPINNED\n" in r.out
    base.write_text("{}")
    r = cli("refs", "scan", str(src), "--offline", "--baseline", str(base))
    assert r.code == 2 and "not a hubwatch refs baseline" in r.err


# -- SARIF ----------------------------------------------------------------------------------------
def test_sarif_rules_results_and_notebook_lines(tmp_path):
    nb = notebook(("markdown", "# title"), ("code", ["import os\n", 'm = AutoModel.from_pretrained("org/nb")']))
    nb_text = json.dumps(json.loads(nb), indent=1)  # nbformat's layout: one source line per JSON line
    src = tree(tmp_path, {"a.py": 'import sys\nAutoModel.from_pretrained("orq/m", trust_remote_code=True)\n'
                                  'AutoModel.from_pretrained(sys.argv[1])  # hubwatch: ignore[unresolved]\n',
                          "b.ipynb": nb_text, "c.py": "def broken(:\n  from_pretrained\n"})
    code, doc = sarif(str(src), "--offline", "--protected", "org", "--fail-if", "lookalike")
    assert code == 1
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert sorted(r["id"] for r in rules) == sorted(
        ["unpinned", "lookalike", "missing", "renamed", "unresolved", "uninspected", "remote-code", "unknown"])
    assert all(0 < float(r["properties"]["security-severity"]) <= 10 for r in rules)
    got = {(Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name, r["ruleId"],
            r["locations"][0]["physicalLocation"].get("region", {}).get("startLine")): r for r in run["results"]}
    assert {("a.py", rule, 2) for rule in ("unpinned", "lookalike", "remote-code")} <= set(got)
    assert 'revision="<40-hex commit sha>"' in got[("a.py", "unpinned", 2)]["message"]["text"]
    assert "suppressions" not in got[("a.py", "unpinned", 3)]  # the unresolved load is unpinned too
    got = {(f, rule): r for (f, rule, _), r in got.items() if (f, rule) != ("a.py", "unpinned")}
    assert got[("a.py", "unresolved")]["suppressions"][0]["kind"] == "inSource"
    assert ("c.py", "uninspected") in got
    # a notebook result points at the line of the .ipynb JSON that holds the call
    line = got[("b.ipynb", "unpinned")]["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert "from_pretrained" in nb_text.splitlines()[line - 1]
    assert "cell 2, line 2" in got[("b.ipynb", "unpinned")]["message"]["text"]
    _, empty = sarif(str(tmp_path / "a.py"), "--offline")
    assert empty["runs"][0]["results"]


def test_sarif_fix_hint_names_the_commit_online(env, hub, tmp_path):
    head = hub.add_repo("org/model")
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/model")\n'})
    env.write()
    r = env.run("refs", "scan", str(src), "--format", "sarif")
    doc = json.loads(r.out)
    jsonschema.validate(doc, SCHEMA)
    (result,) = [x for x in doc["runs"][0]["results"] if x["ruleId"] == "unpinned"]
    assert f'revision="{head}"' in result["message"]["text"]


# -- pre-commit and --protected -------------------------------------------------------------------
def test_pre_commit_hook_runs_the_documented_command(tmp_path, monkeypatch):
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["args"] == ["-c", ".hubwatch.toml"]
    words = shlex.split(hook["entry"])
    assert words[:3] == ["hubwatch", "refs", "scan"] and "--offline" in words
    src = tree(tmp_path, {".hubwatch.toml": '[lookalike]\nprotected = ["meta-llama"]\n',
                          "ok.py": 'AutoModel.from_pretrained("meta-llama/Llama-2-7b-hf")\n',
                          "bad.py": 'AutoModel.from_pretrained("meta-IIama/Llama-2-7b-hf")\n'})
    monkeypatch.chdir(src)
    assert cli(*words[1:], *hook["args"], "ok.py").code == 0
    r = cli(*words[1:], *hook["args"], "ok.py", "bad.py")
    assert r.code == 1 and "LOOK-ALIKE of meta-llama" in r.out


# -- edges ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_named_fifo_is_refused_at_once_and_one_in_a_walk_is_skipped(tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    r = cli("refs", "scan", str(fifo), "--offline")  # would block for ever if it were opened
    assert r.code == 2 and r.err.strip() == f"hubwatch: {fifo}: not a regular file"
    tree(tmp_path, {"a.py": 'AutoModel.from_pretrained("org/a")\n'})
    r = cli("refs", "scan", str(tmp_path), "--offline", "--json", "--fail-if", "uninspected")
    assert r.code == 0
    assert {"skipped": True, "file": str(fifo), "reason": "not a regular file: skipped"} in rows(r)
    assert "1 skipped" in r.err


def test_symlinks_out_of_the_tree_are_not_followed(tmp_path):
    outside = tree(tmp_path / "outside", {"secret.py": 'AutoModel.from_pretrained("org/outside")\n'})
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/inside")\n'})
    (src / "link.py").symlink_to(outside / "secret.py")
    (src / "inner.py").symlink_to(src / "a.py")
    r = cli("refs", "scan", str(src), "--offline", "--json")
    got = rows(r)
    assert sorted(o["repo"] for o in got if "repo" in o) == ["org/inside", "org/inside"]
    assert {"skipped": True, "file": str(src / "link.py"), "reason": "symlink out of the scanned tree: skipped"} in got


def test_text_output_escapes_terminal_sequences_from_files(tmp_path):
    evil = "a\x1b]0;pwned\x07b.py"
    src = tree(tmp_path, {evil: 'AutoModel.from_pretrained("org/m", revision="v1\\x1b[2J")\n'})
    r = cli("refs", "scan", str(src), "--offline")
    assert "\x1b" not in r.out and "\x1b" not in r.err
    assert "org/m" in r.out


def test_notebook_cell_in_json_and_in_write_pins_comments(env, hub, tmp_path):
    hub.add_repo("org/nb")
    src = tree(tmp_path / "src", {"n.ipynb": notebook(("markdown", "x"), ("code", "import os"),
                                                       ("code", 'AutoModel.from_pretrained("org/nb")'))})
    env.write()
    r = env.run("refs", "scan", str(src), "--json")
    assert [(o["cell"], o["line"]) for o in rows(r)] == [(3, 1)]
    pins = tmp_path / "pins.toml"
    assert env.run("refs", "scan", str(src), "--write-pins", str(pins)).code == 0
    assert f"[[pin]]  # {src / 'n.ipynb'} cell 3:1" in pins.read_text()


def test_kernels_are_typed_kernel_and_skipped_by_write_pins(env, hub, tmp_path):
    hub.add_repo("org/m")
    src = tree(tmp_path / "src", {"k.py": 'from kernels import get_kernel\nget_kernel("kernels-community/activation")\n'
                                          'AutoModel.from_pretrained("org/m")\n'
                                          'def f(rev):\n    AutoModel.from_pretrained("org/m", revision=rev)\n'})
    env.write()
    pins = tmp_path / "pins.toml"
    r = env.run("refs", "scan", str(src), "--json", "--write-pins", str(pins))
    assert ("kernels-community/activation", "kernel") in [(o["repo"], o["type"]) for o in rows(r)]
    assert "kernel kernels-community/activation: not pinned: [[pin]] cannot watch kernels yet" in r.err
    # an unresolved revision is never pinned as if it were main
    assert "k.py:5: model org/m: not pinned: its revision is not resolved (rev)" in r.err
    assert "kernels-community" not in pins.read_text() and pins.read_text().count('repo = "org/m"') == 1


# -- resolve like a reader, local or Hub ------------------------------------------------------------
def test_resolution_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("BASE_MODEL", raising=False)
    src = tree(tmp_path, {
        "nb.ipynb": notebook(("code", 'model_id = "facebook/opt-350m"'), ("code", "AutoModel.from_pretrained(model_id)"),
                             ("code", 'model_id = "facebook/opt-350m"\nAutoTokenizer.from_pretrained(model_id)'),
                             ("code", 'model_id, out = "CohereLabs/tiny-aya-global", "tiny-out"\n'
                                      "AutoModel.from_pretrained(model_id)")),
        "s.py": "import os, argparse\n"
                'def main():\n    name = "answerdotai/ModernBERT-base"\n    CrossEncoder(name)\n'
                'ORG = "org"\nAutoModel.from_pretrained(f"{ORG}/fstr")\n'
                'AutoModel.from_pretrained(os.environ.get("BASE_MODEL", "org/env-default"))\n'
                'p = argparse.ArgumentParser()\np.add_argument("--model_name_or_path", default="org/arg-default")\n'
                'if os.environ.get("BIG"):\n    M = "org/big"\nelse:\n    M = "org/small"\n'
                "AutoModel.from_pretrained(M)\n",
    })
    got = [(Path(o["file"]).name, o.get("cell"), o["line"], o["repo"], o.get("source"), o.get("candidates"))
           for o in rows(cli("refs", "scan", str(src), "--offline", "--json")) if "repo" in o]
    assert got == [  # sorted by file, cell, line
        ("nb.ipynb", 2, 1, "facebook/opt-350m", None, None),
        ("nb.ipynb", 3, 2, "facebook/opt-350m", None, None),  # the same literal re-bound: the same constant
        ("nb.ipynb", 4, 2, "CohereLabs/tiny-aya-global", None, None),
        ("s.py", None, 4, "answerdotai/ModernBERT-base", None, None),  # a function-local constant
        ("s.py", None, 6, "org/fstr", None, None),
        ("s.py", None, 7, "org/env-default", "default", None),
        ("s.py", None, 9, "org/arg-default", "default", None),
        ("s.py", None, 14, "org/big", None, 2),  # branches differ: each candidate, marked
        ("s.py", None, 14, "org/small", None, 2),
    ]


def test_local_or_hub(tmp_path):
    src = tree(tmp_path, {"t.py": 'Trainer(model=m, args=TrainingArguments(output_dir="my_awesome_qa_model"))\n'
                                  'AutoModel.from_pretrained("my_awesome_qa_model")\n'
                                  'AutoModel.from_pretrained("gpt2")\n'
                                  'AutoModel.from_pretrained("path-to-your-trained-model")\n'
                                  'load_dataset("squad")\n'
                                  'model.save_pretrained("org/saved")\nPeftModel.from_pretrained(m, "org/saved")\n'})
    got = {o["repo"]: o.get("ambiguous", False) for o in rows(cli("refs", "scan", str(src), "--offline", "--json"))
           if "repo" in o}
    assert got == {"gpt2": False, "path-to-your-trained-model": True, "squad": False}


def test_config_semantics_through_the_cli(tmp_path):
    src = tree(tmp_path, {
        "tasks/_template_yaml": "dataset_path: cais/mmlu\ntest_split: test\n",
        "tasks/mmlu_anatomy.yaml": 'dataset_name: anatomy\ninclude: _template_yaml\ntask: mmlu_anatomy\n',
        "tasks/anli.yaml": "task: anli_r1\ndataset_path: anli\ndataset_name: null\n",
        "tasks/own.yaml": "task: t\ndataset_path: my_local_thing\n",
        "axolotl.yaml": "base_model: org/base\nrevision_of_model: abc123\ndatasets:\n  - path: org/ds\n    type: alpaca\n"
                        "output_dir: ./out\n",
        "lf.yaml": "model_name_or_path: Qwen/Qwen3-4B\ndataset: identity,alpaca_en_demo\n"
                   "dataset_dir: REMOTE:llamafactory/demo_data\n",
        "trl.yaml": "model_name_or_path: Qwen/Qwen2.5-0.5B\ndataset_name: stanfordnlp/imdb\n",
    })
    got = sorted((Path(o["file"]).name, o["line"], o["repo"], o["type"], o["revision"], o.get("subset"),
                  o.get("ambiguous", False)) for o in rows(cli("refs", "scan", str(src), "--offline", "--json"))
                 if "repo" in o)
    assert got == [
        ("_template_yaml", 1, "cais/mmlu", "dataset", None, None, False),
        ("anli.yaml", 2, "anli", "dataset", None, None, False),
        ("axolotl.yaml", 1, "org/base", "model", "abc123", None, False),
        ("axolotl.yaml", 4, "org/ds", "dataset", None, None, False),
        ("lf.yaml", 1, "Qwen/Qwen3-4B", "model", None, None, False),
        ("lf.yaml", 3, "llamafactory/demo_data", "dataset", None, None, False),
        ("mmlu_anatomy.yaml", 1, "cais/mmlu", "dataset", None, "anatomy", False),
        ("own.yaml", 2, "my_local_thing", "dataset", None, None, True),
        ("trl.yaml", 1, "Qwen/Qwen2.5-0.5B", "model", None, None, False),
        ("trl.yaml", 2, "stanfordnlp/imdb", "dataset", None, None, False),
    ]


# -- the labelled set ------------------------------------------------------------------------------
def test_labelled_set_scores():
    """The benchmark's scorer in-process: precision >= 0.98 and recall >= 0.95 on real upstream files."""
    spec = importlib.util.spec_from_file_location("refs_labelled", ROOT / "benchmarks" / "refs_labelled.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.scan = lambda tree_dir: rows(cli("refs", "scan", tree_dir, "--offline", "--json"))
    right = reported = labelled = 0
    for name in sorted(p.name for p in (ROOT / "tests" / "data" / "refs_labelled").iterdir() if p.is_dir()):
        r, rep, lab, _ = bench.score(name)
        right, reported, labelled = right + r, reported + rep, labelled + lab
    assert labelled > 150 and right / reported >= 0.98 and right / labelled >= 0.95, (right, reported, labelled)


def test_an_ambiguous_name_the_hub_lacks_is_local_not_missing(env, hub, tmp_path):
    hub.add_repo("org/real")
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("path-to-your-trained-model")\n'
                                          f'AutoModel.from_pretrained("org/real", revision="{SHA}")\n'})
    env.write()
    r = env.run("refs", "scan", str(src), "--json", "--fail-if", "missing")
    assert r.code == 0, r
    assert [(o["repo"], o.get("ambiguous"), o["hub_state"]) for o in rows(r)] == [
        ("path-to-your-trained-model", True, "missing"), ("org/real", None, "exists")]
    (src / "b.py").write_text('AutoModel.from_pretrained("org/gone")\n')
    assert env.run("refs", "scan", str(src), "--fail-if", "missing").code == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_lm_eval_include_that_is_a_fifo_or_outside_never_blocks(tmp_path):
    os.mkfifo(tmp_path / "_fifo_yaml")
    src = tree(tmp_path / "tasks", {"a.yaml": "task: a\ndataset_name: sub\ninclude: ../_fifo_yaml\n",
                                    "b.yaml": "task: b\ndataset_name: sub\ninclude: ../../../../../../no/such\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json")
    # the task loads a dataset we cannot name: an unresolved entry, never a repo named "sub"
    assert r.code == 0 and [(Path(o["file"]).name, o["call"], o["reason"]) for o in rows(r)] == [
        ("a.yaml", "dataset_name", "include ../_fifo_yaml not readable"),
        ("b.yaml", "dataset_name", "include ../../../../../../no/such not readable")]


def test_no_cache_is_listed_not_a_failure(tmp_path):
    src = tree(tmp_path / "src", {"a.py": f'AutoModel.from_pretrained("org/a", revision="{SHA}")\n'})
    r = cli("refs", "scan", str(src), "--from-cache", "--cache-dir", str(tmp_path / "none"), "--offline", "--json",
            "--fail-if", "unpinned,uninspected")
    assert r.code == 0, r
    assert {"skipped": True, "file": str(tmp_path / "none"), "reason": "no Hugging Face cache here (not a directory)"} \
        in rows(r)
