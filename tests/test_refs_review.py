"""Review of issue 15 on real upstream layouts (synthetic snippets, no third-party code): recipe
configs' dataset mixtures and trust_remote_code, and directory symlinks out of the scanned tree."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_refs_cli import cli, rows, tree


def test_dataset_mixture_ids_are_dataset_references_with_their_subset(tmp_path):
    # alignment-handbook recipes: dataset_mixture: datasets: [{id, config, split}] (TRL's own mixture says path/name)
    src = tree(tmp_path, {"recipe.yaml": "model_name_or_path: org/base\ndataset_mixture:\n  datasets:\n"
                                         "    - id: org/chat\n      config: SFT\n      split: train\n"
                                         "    - path: org/other\n      name: sub\n    - id: local_thing\n"})
    got = [(o["line"], o["repo"], o["type"], o.get("subset"), o["via"])
           for o in rows(cli("refs", "scan", str(src), "--offline", "--json"))]
    assert got == [(1, "org/base", "model", None, "model_name_or_path"),
                   (4, "org/chat", "dataset", "SFT", "datasets[].id"),
                   (7, "org/other", "dataset", "sub", "datasets[].path")]


def test_trust_remote_code_in_a_config_is_remote_code(tmp_path):
    src = tree(tmp_path, {"sft.yaml": "model_name_or_path: org/m\nmodel_revision: main\ntrust_remote_code: true\n"
                                      "dataset_name: org/d\n",
                          "off.yaml": "model_name_or_path: org/off\ntrust_remote_code: false\n",
                          "task.yaml": "task: t\ndataset_path: org/lm\ndataset_kwargs:\n  trust_remote_code: true\n",
                          "c.json": '{"model_name_or_path": "org/j", "trust_remote_code": true}\n'})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "remote-code")
    assert r.code == 1
    assert {o["repo"]: o.get("remote_code", False) for o in rows(r)} == {
        "org/m": True, "org/d": False,  # the recipe's flag is the model's (TRL ModelConfig, axolotl)
        "org/off": False, "org/lm": True, "org/j": True}
    for name in ("sft.yaml", "task.yaml", "c.json"):
        (src / name).unlink()
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "remote-code").code == 0


def test_a_directory_symlink_out_of_the_tree_is_listed_as_skipped(tmp_path):
    outside = tree(tmp_path / "outside", {"secret.py": 'AutoModel.from_pretrained("org/outside")\n'})
    src = tree(tmp_path / "src", {"a.py": 'AutoModel.from_pretrained("org/inside")\n'})
    (src / "vendor").symlink_to(outside, target_is_directory=True)
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "uninspected")
    assert r.code == 0
    got = rows(r)
    assert [o["repo"] for o in got if "repo" in o] == ["org/inside"]
    assert {"skipped": True, "file": str(src / "vendor"), "reason": "symlink out of the scanned tree: skipped"} in got
    assert Path(src / "vendor" / "secret.py").is_file()  # it was there to be followed


def test_inline_ignore_in_a_yaml_config(tmp_path):
    src = tree(tmp_path, {"recipe.yaml": "model_name_or_path: org/m  # hubwatch: ignore[unpinned]\n"
                                         "dataset_name: org/d\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1  # org/d is not waived
    assert [(o["repo"], o.get("suppressed")) for o in rows(r)] == [("org/m", ["unpinned"]), ("org/d", None)]
    (src / "recipe.yaml").write_text("model_name_or_path: org/m  # hubwatch: ignore[unpinned]\n")
    r = cli("refs", "scan", str(src), "--offline", "--fail-if", "unpinned")
    assert r.code == 0 and "(suppressed inline: unpinned)" in r.out
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike", "--protected", "orq").code == 1


def test_unpacked_arguments_and_imported_constants_are_unresolved_not_silent(tmp_path):
    src = tree(tmp_path, {"a.py": "import sys\nfrom settings import MODEL_ID\n"
                                  "AutoModel.from_pretrained(**kwargs)\n"
                                  "AutoModel.from_pretrained(*sys.argv[1:])\n"
                                  "AutoModel.from_pretrained(MODEL_ID)\n"
                                  "hf_hub_download(**cfg)\n"
                                  "SFTTrainer(**trainer_kwargs)\n"  # a trainer's model is usually an object: quiet
                                  'pipeline("text-classification")\n'})  # the task's default model: by design
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1, "a load whose repo is unpacked or imported may load anything: the gate must not pass it"
    assert [(o["line"], o["call"], o["reason"]) for o in rows(r)] == [
        (3, "from_pretrained", "unpacked **kwargs"), (4, "from_pretrained", "unpacked *sys.argv[1:]"),
        (5, "from_pretrained", "imported name MODEL_ID"), (6, "hf_hub_download", "unpacked **cfg")]


def test_a_local_object_named_like_a_loader_is_not_the_loader(tmp_path):
    # diffusers' training scripts: `pipeline = DiffusionPipeline.from_pretrained(...)`, then `pipeline(**args)`
    src = tree(tmp_path, {"t.py": "def log_validation(args):\n"
                                  '    pipeline = DiffusionPipeline.from_pretrained("org/sd")\n'
                                  "    pipeline = pipeline.to(args.device)\n"
                                  "    pipeline(**pipeline_args, num_inference_steps=25)\n"
                                  "    pipeline(args.prompt, image)\n"
                                  "def run(pipeline, prompt):\n    pipeline(prompt, image)\n"
                                  "def load_dataset(name):\n    return datasets.load_dataset(name)\n"
                                  'load_dataset("org/wrapped")\n',
                          "p.py": "from functools import partial\nimport datasets\n"
                                  'load_dataset = partial(datasets.load_dataset, split="train")\n'
                                  'load_dataset("org/partial")\n'})
    assert [o["repo"] for o in rows(cli("refs", "scan", str(src / "p.py"), "--offline", "--json"))] == ["org/partial"]
    r = cli("refs", "scan", str(src / "t.py"), "--offline", "--json")
    assert [(o["line"], o.get("repo") or o["reason"]) for o in rows(r)] == [
        (2, "org/sd"), (10, "org/wrapped"), (9, "parameter name")]  # references, then unresolved entries


def test_a_blank_or_a_line_break_before_the_parenthesis_does_not_hide_a_load(tmp_path):
    nb = '{"cells": [{"cell_type": "code", "metadata": {}, "source": "pipe = pipeline (model=\\"org/nb\\")"}]}'
    src = tree(tmp_path, {"a.py": 'AutoModel.from_pretrained ("org/space")\n'
                                  'AutoModel.from_pretrained\\\n("org/continued")\n'
                                  'm = (AutoModel\n  .from_pretrained\n  ("org/chained"))\n'
                                  'load_dataset\t("org/tab")\n',
                          "t.py": 'SFTTrainer (model="org/trl")\n', "n.ipynb": nb})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1
    assert [(Path(o["file"]).name, o["line"], o["repo"]) for o in rows(r)] == [
        ("a.py", 1, "org/space"), ("a.py", 3, "org/continued"), ("a.py", 6, "org/chained"), ("a.py", 7, "org/tab"),
        ("n.ipynb", 1, "org/nb"), ("t.py", 1, "org/trl")]


def test_lone_carriage_return_line_ends_do_not_hide_a_load(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_bytes(b'import os\rx = 1\rAutoModel.from_pretrained("org/cr")\r'
                               b'AutoModel.from_pretrained("org/ign")  # hubwatch: ignore[unpinned]\r')
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1
    assert [(o["line"], o["repo"], o.get("suppressed")) for o in rows(r)] == [
        (3, "org/cr", None), (4, "org/ign", ["unpinned"])]


def test_escaped_or_compatibility_spelt_loader_names_are_still_read(tmp_path):
    nb = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": 'AutoModel.from_pretrained("org/nb")'}],
                     "nbformat": 4, "nbformat_minor": 5}).replace("from_pretrained", "\\u0066rom_pretrained")
    src = tree(tmp_path, {"a.py": 'AutoModel.\uff46rom_pretrained("org/fullwidth")\n',  # NFKC: from_pretrained
                          "n.ipynb": nb, "w.ipynb": json.dumps({"cells": [{"cell_type": "code", "metadata": {},
                                                                             "source": 'p = \uff50ipeline(model="org/w")'}]},
                                                                  ensure_ascii=False),
                          "c.json": '{"\\u006dodel_name_or_path": "org/json"}\n',
                          "c.yaml": '"\\x6dodel_name_or_path": org/yaml\n'})
    assert "from_pretrained" not in (src / "n.ipynb").read_text() and "\\u0066rom" in (src / "n.ipynb").read_text()
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1
    assert sorted(o["repo"] for o in rows(r)) == ["org/fullwidth", "org/json", "org/nb", "org/w", "org/yaml"]


def test_sarif_uris_are_plain_relative_paths_when_scanning_dot(tmp_path, monkeypatch):
    import jsonschema

    from tests.test_refs_gate import SCHEMA

    tree(tmp_path, {"sub/a.py": 'AutoModel.from_pretrained("org/a")\n'})
    monkeypatch.chdir(tmp_path)
    doc = json.loads(cli("refs", "scan", ".", "--offline", "--format", "sarif").out)
    jsonschema.validate(doc, SCHEMA)
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]} == {
        "sub/a.py"}  # code scanning matches uris against the repository's paths: no "./"


def test_a_baseline_written_from_dot_serves_the_pre_commit_file_names(tmp_path, monkeypatch):
    tree(tmp_path, {"src/a.py": 'AutoModel.from_pretrained("org/a")\n'})
    monkeypatch.chdir(tmp_path)
    assert cli("refs", "scan", ".", "--offline", "--write-baseline", "base.json").code == 0
    assert '"file": "src/a.py"' in (tmp_path / "base.json").read_text()
    r = cli("refs", "scan", "--offline", "--baseline", "base.json", "--fail-if", "unpinned", "src/a.py")
    assert r.code == 0 and "(in baseline: unpinned)" in r.out


def test_loading_back_what_the_code_saved_to_is_local_not_unresolved(tmp_path):
    # diffusers' training scripts: save to args.output_dir, then load_lora_weights(args.output_dir) to validate
    src = tree(tmp_path, {"train.py": "def main(args):\n"
                                      "    pipe = DiffusionPipeline.from_pretrained(args.pretrained_model_name_or_path)\n"
                                      "    unet.save_pretrained(args.output_dir)\n"
                                      "    pipe.load_lora_weights(args.output_dir)\n"
                                      "    pipe.load_lora_weights(args.other_dir)\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json")
    assert [(o["line"], o["reason"]) for o in rows(r)] == [
        (2, "attribute args.pretrained_model_name_or_path"), (5, "attribute args.other_dir")]


def test_an_unresolved_load_with_trust_remote_code_meets_remote_code(tmp_path):
    import jsonschema

    from tests.test_refs_gate import SCHEMA

    sha = "0123456789abcdef0123456789abcdef01234567"
    src = tree(tmp_path, {"a.py": "import sys\nAutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "remote-code")
    assert r.code == 1, "whatever it loads, it runs that repo's code unpinned"
    assert rows(r) == [{"unresolved": True, "file": str(src / "a.py"), "line": 2, "call": "from_pretrained",
                        "reason": "subscript", "remote_code": True}]
    assert "UNRESOLVED from_pretrained: subscript REMOTE CODE" in cli("refs", "scan", str(src), "--offline").out
    doc = json.loads(cli("refs", "scan", str(src), "--offline", "--format", "sarif").out)
    jsonschema.validate(doc, SCHEMA)
    assert sorted(x["ruleId"] for x in doc["runs"][0]["results"]) == ["remote-code", "unpinned", "unresolved"]
    (src / "a.py").write_text(f'import sys\nAutoModel.from_pretrained(sys.argv[1], trust_remote_code=True, revision="{sha}")\n'
                              "AutoModel.from_pretrained(sys.argv[1])\n")
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "remote-code").code == 0


def test_a_diffusers_custom_pipeline_repo_is_a_remote_code_reference(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    src = tree(tmp_path, {"a.py": 'DiffusionPipeline.from_pretrained("org/sd", custom_pipeline="org/pipe")\n'
                                  'DiffusionPipeline.from_pretrained("org/sd", custom_pipeline="lpw_stable_diffusion")\n'
                                  f'DiffusionPipeline.from_pretrained("org/sd", custom_pipeline="org/p2", custom_revision="{sha}")\n'
                                  'DiffusionPipeline.from_pretrained("org/sd", custom_pipeline=args.pipe)\n'})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "remote-code")
    assert r.code == 1
    assert [(o["line"], o.get("repo") or o["call"], o.get("revision"), o.get("remote_code", False)) for o in rows(r)] == [
        (1, "org/pipe", None, True), (1, "org/sd", None, False), (2, "org/sd", None, False),
        (3, "org/p2", sha, True), (3, "org/sd", None, False), (4, "org/sd", None, False),
        (4, "custom_pipeline", None, True)]
    (src / "a.py").write_text(f'DiffusionPipeline.from_pretrained("org/sd", custom_pipeline="org/p2", custom_revision="{sha}")\n')
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "remote-code").code == 0


def test_unsloth_from_pretrained_model_name_keyword(tmp_path):
    src = tree(tmp_path, {"a.py": "from unsloth import FastLanguageModel\n"
                                  'model, tok = FastLanguageModel.from_pretrained(model_name="unsloth/Llama-3.2-3B-Instruct",\n'
                                  "                                               max_seq_length=2048)\n"})
    r = cli("refs", "scan", str(src), "--offline", "--json", "--fail-if", "unpinned")
    assert r.code == 1 and [(o["line"], o["repo"]) for o in rows(r)] == [(2, "unsloth/Llama-3.2-3B-Instruct")]


def test_a_writefile_cell_of_a_python_script_is_read(tmp_path):
    from tests.test_refs_cli import notebook

    src = tree(tmp_path, {"n.ipynb": notebook(
        ("code", '%%writefile scripts/train.py\nfrom transformers import AutoModel\nAutoModel.from_pretrained("org/script")\n'),
        ("code", '%%writefile notes.txt\nAutoModel.from_pretrained("org/text")\n'),
        ("code", "!python scripts/train.py"))})
    r = cli("refs", "scan", str(src), "--offline", "--json")
    assert [(o["cell"], o["line"], o["repo"]) for o in rows(r)] == [(1, 3, "org/script")]


def test_protected_names_repeat_or_comma_separated(tmp_path):
    src = tree(tmp_path, {"bad.py": 'AutoModel.from_pretrained("meta-IIama/Llama-2-7b-hf")\n'})
    for args in (["--protected", "foo,meta-llama"], ["--protected", "foo", "--protected", "meta-llama"]):
        r = cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike", *args)
        assert r.code == 1 and "LOOK-ALIKE of meta-llama" in r.out
    assert cli("refs", "scan", str(src), "--offline", "--fail-if", "lookalike", "--protected", "foo").code == 0
