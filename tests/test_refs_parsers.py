"""Tables for the refs parsers (pure): Python calls, notebook cells, YAML/JSON keys, cache layout.

Each row is source text and the (repo, type, line, revision) it must yield; the negatives
(comments, docstrings, strings that are not call arguments, markdown cells, local paths,
packaged dataset builders) must yield nothing.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.refs import cache, configs, notebook, python, walk

SHA = "0123456789abcdef0123456789abcdef01234567"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def found(parsed):
    return [(r.repo, r.type, r.line, r.revision) for r in parsed.references]


PYTHON = [
    ('AutoModel.from_pretrained("EleutherAI/gpt-j-6b")', [("EleutherAI/gpt-j-6b", "model", 1, None)]),
    ('transformers.AutoTokenizer.from_pretrained("gpt2", revision="v1")', [("gpt2", "model", 1, "v1")]),
    (f'M.from_pretrained(pretrained_model_name_or_path="a/b", revision="{SHA}")', [("a/b", "model", 1, SHA)]),
    ('hf_hub_download(repo_id="org/ds", filename="x.csv", repo_type="dataset")', [("org/ds", "dataset", 1, None)]),
    ('hf_hub_download("org/m", "config.json", revision="main")', [("org/m", "model", 1, "main")]),
    ('huggingface_hub.snapshot_download("org/space", repo_type="space")', [("org/space", "space", 1, None)]),
    ('snapshot_download(repo_id="org/d", repo_type=constants.REPO_TYPE_DATASET)', [("org/d", "dataset", 1, None)]),
    ('pipeline("text-generation", model="meta-llama/Llama-2-7b")', [("meta-llama/Llama-2-7b", "model", 1, None)]),
    ('pipeline("text-generation", "org/model")', [("org/model", "model", 1, None)]),
    ('load_dataset("rajpurkar/squad", split="train")', [("rajpurkar/squad", "dataset", 1, None)]),
    ('datasets.load_dataset(path="glue", name="mrpc", revision="refs/convert/parquet")',
     [("glue", "dataset", 1, "refs/convert/parquet")]),
    ('PeftModel.from_pretrained(base, "org/adapter")', [("org/adapter", "model", 1, None)]),
    ('AutoModel.from_pretrained(\n    "org/multi",\n    revision="v2",\n)', [("org/multi", "model", 2, "v2")]),
    ('AutoModel.from_pretrained(f"org/constant-fstring")', [("org/constant-fstring", "model", 1, None)]),
    # module-level constants, including one used inside a function that does not shadow it
    ('MODEL = "org/const"\nREV = "v3"\ndef f():\n    return AutoModel.from_pretrained(MODEL, revision=REV)',
     [("org/const", "model", 4, "v3")]),
    # negatives
    ('# AutoModel.from_pretrained("evil/comment")', []),
    ('"""AutoModel.from_pretrained("evil/docstring")"""', []),
    ('def f():\n    """Load with from_pretrained("evil/doc")."""\n    return 1', []),
    ('x = "org/not-an-argument"\nprint("from_pretrained(\'evil/string\')")', []),
    ('AutoModel.from_pretrained("./checkpoints/run1")', []),
    ('AutoModel.from_pretrained("/abs/path")', []),
    ('AutoModel.from_pretrained("outputs/a/b")', []),
    ('load_dataset("csv", data_files="train.csv")', []),
    ('load_dataset("json", data_files={"train": "x.jsonl"})', []),
    ('load_dataset("data/train.parquet")', []),
    ('from_pretrained("org/bare-call-is-not-a-loader")', []),
    # re-bound: each load reports the value that reaches it in straight-line order
    ('MODEL = "org/a"\nAutoModel.from_pretrained(MODEL)\nMODEL = "org/b"\nAutoModel.from_pretrained(MODEL)',
     [("org/a", "model", 2, None), ("org/b", "model", 4, None)]),
    ('MODEL = "org/a"\ndef f(MODEL):\n    return AutoModel.from_pretrained(MODEL)', []),  # shadowed
]

# Calls through import aliases: the alias is read from the import, the call line need not name the loader.
ALIASES = [
    ('from transformers import pipeline as p\np("text-generation", model="org/pipe")',
     [("org/pipe", "model", 2, None)]),
    ('import huggingface_hub as hh\nhh.snapshot_download("org/snap", revision="v1")', [("org/snap", "model", 2, "v1")]),
    ('from transformers import AutoModel as AM\nAM.from_pretrained("org/auto")', [("org/auto", "model", 2, None)]),
    ('from huggingface_hub import hf_hub_download as dl\ndl("org/dl", "config.json")', [("org/dl", "model", 2, None)]),
    ('from huggingface_hub import snapshot_download as sd\nsd(repo_id="org/ds", repo_type="dataset")',
     [("org/ds", "dataset", 2, None)]),
    ('from datasets import load_dataset as ld\nld("org/data", split="train")', [("org/data", "dataset", 2, None)]),
    ('import transformers.pipelines as tp\ntp.pipeline(model="org/mod")', [("org/mod", "model", 2, None)]),
    ('from transformers.pipelines import pipeline as make\nclass A:\n    def f(self):\n        return make(model="org/m")',
     [("org/m", "model", 4, None)]),
    ('def f():\n    from datasets import load_dataset as ld\n    return ld("org/local-import")',
     [("org/local-import", "dataset", 3, None)]),
    ('try:\n    from transformers import pipeline as p\nexcept ImportError:\n    p = None\np(model="org/try")',
     [("org/try", "model", 5, None)]),
    ('from peft import PeftModel as PM\nPM.from_pretrained(base, "org/adapter")', [("org/adapter", "model", 2, None)]),
    ('from peft import AutoPeftModelForCausalLM as APM\nAPM.from_pretrained("org/auto-adapter")',
     [("org/auto-adapter", "model", 2, None)]),
    ('AutoPeftModelForCausalLM.from_pretrained("org/auto-peft")', [("org/auto-peft", "model", 1, None)]),
    # negatives stay negative
    ('from mylib import build as pipeline\npipeline("text-generation", model="org/not-hf")', []),
    ('from sklearn.pipeline import Pipeline as p\np("org/not-a-loader")', []),
    ('from transformers import pipeline as p\nq("text-generation", model="org/other-name")', []),
    ('from transformers import pipeline as p\nprint("p(model=\'org/in-a-string\')")  # p("org/comment")', []),
    ('import huggingface_hub as hh\nhh.whoami("org/not-a-loader")', []),
    ('from transformers import pipeline as p\ndef f(p):\n    return p(model="org/a-parameter")', []),
    ('from transformers import pipeline as p\ndef f():\n    p = make()\n    return p(model="org/a-local")', []),
    ('from transformers import AutoModel as from_pretrained\nfrom_pretrained("org/bare")', []),
]


@pytest.mark.parametrize("source,expected", PYTHON)
def test_python_table(source, expected):
    assert found(python.parse(source, "x.py")) == expected


@pytest.mark.parametrize("source,expected", ALIASES)
def test_python_calls_through_import_aliases(source, expected):
    assert found(python.parse(source, "x.py")) == expected


def test_python_alias_of_a_loader_with_a_variable_is_unresolved():
    p = python.parse('from transformers import pipeline as p\ndef f(name):\n    return p(model=name)', "x.py")
    assert found(p) == [] and [(u.line, u.via, u.why) for u in p.unresolved] == [(3, "pipeline", "parameter name")]


def test_python_unresolved_arguments_are_reported_not_guessed():
    src = textwrap.dedent('''
        def load(name, rev):
            a = AutoModel.from_pretrained(name)
            b = AutoModel.from_pretrained(f"org/{name}")
            c = AutoModel.from_pretrained("org/ok", revision=rev)
    ''')
    p = python.parse(src, "x.py")
    assert found(p) == [("org/ok", "model", 5, None)]
    assert p.references[0].revision_expr == "rev" and not p.references[0].pinned  # never "default branch"
    assert [(u.line, u.via, u.why) for u in p.unresolved] == [
        (3, "from_pretrained", "parameter name"), (4, "from_pretrained", "f-string of parameter name")]


@pytest.mark.parametrize("source", ["def (:\n", "print 'py2'\n", "x = 1\x00\n", "(" * 300 + ")" * 300])
def test_python_unparsable_is_a_problem(source):
    p = python.parse(source, "bad.py")
    assert p.references == () and len(p.problems) == 1 and p.problems[0].file == "bad.py"
    assert "\n" not in p.problems[0].message


def _nb(*cells, **extra):
    return json.dumps({"cells": [{"cell_type": t, "source": s, "metadata": {}} for t, s in cells], **extra})


def test_notebook_code_cells_with_magics_and_shell_lines():
    nb = _nb(
        ("markdown", ['Use `AutoModel.from_pretrained("evil/markdown")`\n']),
        ("code", ["%pip install -q transformers \\\n", "    accelerate\n", "!nvidia-smi\n",
                  "files = !ls\n", "AutoModel?\n", 'MODEL = "org/from-const"\n']),
        ("raw", 'AutoModel.from_pretrained("evil/raw")'),
        ("code", '%time m = AutoModel.from_pretrained(MODEL, revision="v1")\nfor i in range(2):\n    !echo\n'),
        ("code", '%%bash\npython -c \'AutoModel.from_pretrained("evil/bash")\''),
        ("code", '%%time\nds = load_dataset("org/ds")'),
        ("code", "def broken(:\n"),
        ("code", 'AutoModel.from_pretrained("org/after-a-broken-cell")'),
    )
    p = notebook.parse(nb, "n.ipynb")
    assert [(r.repo, r.cell, r.line, r.revision) for r in p.references] == [
        ("org/from-const", 4, 1, "v1"), ("org/ds", 6, 2, None), ("org/after-a-broken-cell", 8, 1, None)]
    assert [pr.message.split(":")[0] for pr in p.problems] == ["cell 7"]


def test_notebook_import_alias_in_one_cell_serves_the_next():
    nb = _nb(("code", "from transformers import pipeline as p\nfrom datasets import load_dataset as ld\n"),
             ("markdown", 'p(model="evil/markdown")'),
             ("code", 'pipe = p("text-generation", model="org/nb-pipe")\nds = ld("org/nb-data")\n'))
    p = notebook.parse(nb, "n.ipynb")
    assert [(r.repo, r.type, r.cell, r.line, r.via) for r in p.references] == [
        ("org/nb-pipe", "model", 3, 1, "pipeline"), ("org/nb-data", "dataset", 3, 2, "load_dataset")]


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"cells": 5}', "[" * 100000])
def test_notebook_that_is_not_one_is_a_problem(raw):
    p = notebook.parse(raw, "n.ipynb")
    assert p.references == () and len(p.problems) == 1


YAML = [
    ("model_name_or_path: EleutherAI/pythia-1b\nmodel_revision: v1\n", [("EleutherAI/pythia-1b", "model", 1, "v1")]),
    ("train:\n  base_model: meta-llama/Llama-2-7b\n  revision: " + SHA + "\n",
     [("meta-llama/Llama-2-7b", "model", 2, SHA)]),
    ("dataset_name: squad\n", [("squad", "dataset", 1, None)]),
    ("datasets:\n  - org/one\n  - org/two\n", [("org/one", "dataset", 2, None), ("org/two", "dataset", 3, None)]),
    ("model_name_or_path: gpt2\n---\ntokenizer_name: org/tok\n", [("gpt2", "model", 1, None), ("org/tok", "model", 3, None)]),
    # negatives: comments, other keys, generic keys without org/, local paths, non-strings
    ("# model_name_or_path: evil/comment\nname: x\n", []),
    ('description: "model_name_or_path: evil/in-a-string"\n', []),
    ("model: bert\ndataset: local\n", []),
    ("model_name_or_path: ./output/checkpoint-500\n", []),
    ("model_name_or_path: 12\n", []),
    ("model_name_or_path: !!python/object:os.system x\n", []),  # composed, never constructed
]


@pytest.mark.parametrize("text,expected", YAML)
def test_yaml_table(text, expected):
    assert sorted(found(configs.parse_yaml(text, "c.yaml"))) == sorted(expected)


def test_yaml_alias_bomb_is_walked_once_per_node():
    bomb = "a: &a [model_name_or_path, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    bomb += "model_name_or_path: org/real\n"
    assert found(configs.parse_yaml(bomb, "c.yaml")) == [("org/real", "model", 10, None)]


def test_invalid_yaml_is_a_problem_with_its_line():
    p = configs.parse_yaml("model_name_or_path: [org/a\nx: y\n", "c.yaml")
    assert p.references == () and "not valid YAML (line" in p.problems[0].message


def test_json_table_with_lines():
    text = '{\n  "_name_or_path": "gpt2",\n  "peft": {"base_model_name_or_path": "org/base", "revision": "v1"},\n' \
           '  "note": "model_name_or_path: evil/in-a-string",\n  "model": "bert"\n}'
    assert sorted(found(configs.parse_json(text, "c.json"))) == [("gpt2", "model", 2, None),
                                                                  ("org/base", "model", 3, "v1")]
    assert configs.parse_json("{bad", "c.json").problems[0].message.startswith("not valid JSON")


def _cache_repo(root, name, refs, snapshots):
    repo = root / name
    (repo / "snapshots").mkdir(parents=True)
    (repo / "blobs").mkdir()
    for ref, sha in refs.items():
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(sha)
    for sha in snapshots:
        (repo / "snapshots" / sha / "config.json").parent.mkdir(parents=True)
        (repo / "snapshots" / sha / "config.json").write_text("{}")
    return repo


def test_cache_layout(tmp_path):
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    _cache_repo(tmp_path, "models--EleutherAI--gpt-j-6b", {"main": a, "refs/pr/1": b}, [a, b])
    _cache_repo(tmp_path, "datasets--org--data", {"main": c}, [])  # ref whose snapshot is gone
    _cache_repo(tmp_path, "models--gpt2", {"main": "not a sha"}, [a])
    _cache_repo(tmp_path, "models--..--..--api--x?y", {"main": a}, [a])  # would be a path in a Hub URL
    (tmp_path / ".locks").mkdir()
    (tmp_path / "version.txt").write_text("1")
    p = cache.scan(tmp_path)
    got = [(r.repo, r.type, r.revision, r.cache_refs, r.pinned) for r in p.references]
    assert got == [("org/data", "dataset", c, ("main",), True),
                   ("EleutherAI/gpt-j-6b", "model", a, ("main",), True),
                   ("EleutherAI/gpt-j-6b", "model", b, ("refs/pr/1",), True),
                   ("gpt2", "model", a, (), True)]
    assert [pr.message for pr in p.problems] == ["not a Hub repo id", "ref main does not hold a commit sha"]
    assert cache.scan(tmp_path / "nope").problems


def test_cache_default_dir_follows_huggingface_hub_env():
    assert str(cache.default_dir({"HF_HUB_CACHE": "/x/hub"})) == "/x/hub"
    assert str(cache.default_dir({"HF_HOME": "/h"})) == "/h/hub"
    assert str(cache.default_dir({"XDG_CACHE_HOME": "/c"})) == "/c/huggingface/hub"


def test_walk_skips_tool_dirs_and_reports_bad_files(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text('AutoModel.from_pretrained("org/a")\n')
    (tmp_path / "src" / "b.py").write_text("def (:  # from_pretrained\n")
    (tmp_path / "src" / "plain.py").write_text("print('no trigger here')\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "t.py").write_text('AutoModel.from_pretrained("org/vendored")\n')
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "c.json").write_text('{"model_name_or_path": "org/nm"}')
    (tmp_path / "conf.yml").write_text("model_name_or_path: org/c\n")
    (tmp_path / "loop").symlink_to(tmp_path)
    r = walk.scan([str(tmp_path)])
    assert sorted(x.repo for x in r.references) == ["org/a", "org/c"]
    assert [(p.file.split("/")[-1], p.message.split(" (")[0]) for p in r.problems] == [("b.py", "not valid Python")]
    assert r.files == 4


def test_walk_in_worker_processes_finds_the_same(tmp_path):
    for i in range(12):
        (tmp_path / f"m{i}.py").write_text(f'AutoModel.from_pretrained("org/m{i}")\n')
    (tmp_path / "bad.py").write_text("def (:  # from_pretrained\n")
    serial = walk.scan([str(tmp_path)], workers=1)
    parallel = walk.scan([str(tmp_path)], workers=2, parallel_from=0)
    assert parallel == serial and len(serial.references) == 12 and len(serial.problems) == 1


@pytest.mark.parametrize("parse,text", [
    (configs.parse_json, json.dumps([{"model_name_or_path": f"o/m{i}"} for i in range(configs.MAX_NODES)])),
    (configs.parse_yaml, "".join(f"- model_name_or_path: o/m{i}\n" for i in range(configs.MAX_NODES // 2))),
])
def test_config_node_cap_is_reported_not_silent(parse, text):
    p = parse(text, "big")
    assert 0 < len(p.references) < configs.MAX_NODES and "not fully read" in p.problems[0].message


# Hostile or broken files: every reader returns references and problems, never raises, and a
# problem is one line.
_TEXT = st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                  st.lists(st.sampled_from(['AutoModel.from_pretrained("o/m"', ")", "(", '"""', "%%time", "!ls \\",
                                            "model_name_or_path: ", "[", "{", '"', "&a", "*a", "\n", "    ", "?", "\\"]),
                           max_size=40).map("".join))


@FUZZ
@given(_TEXT)
def test_readers_never_raise(text):
    nb = json.dumps({"cells": [{"cell_type": "code", "source": text}]})
    for parsed in (python.parse(text, "f"), notebook.parse(nb, "f"), notebook.parse(text, "f"),
                   configs.parse_yaml(text, "f"), configs.parse_json(text, "f")):
        assert all("\n" not in p.message for p in parsed.problems)
        assert all(r.repo and r.type in ("model", "dataset", "space") for r in parsed.references)


def test_a_big_file_parsed_in_chunks_finds_exactly_what_a_whole_parse_finds(monkeypatch):
    """Chunks end only between top-level statements: a cut inside a string, a bracket, a decorator
    or an if/else makes the chunk not parse, and the chunk grows instead."""
    parts = ['import os\nfrom transformers import pipeline as make\nMODEL = "org/first"\n']
    for i in range(60):
        parts.append(f'AutoModel.from_pretrained(MODEL, revision="v{i}")\n'
                     f'DOC = """\nAutoModel.from_pretrained("evil/in-docstring-{i}")\nnot_code = 1\n"""\n'
                     f'x = [\nAutoModel.from_pretrained("org/in-list-{i}"),\n]\n'
                     f'@decorator\ndef f{i}(name="org/param-{i}"):\n    return AutoModel.from_pretrained(name)\n'
                     f'if os.environ.get("A"):\n    MODEL = "org/a-{i}"\nelse:\n    MODEL = "org/b-{i}"\n'
                     f'make(model=MODEL)\n')
    source = "".join(parts)
    whole = python.parse(source, "x.py")
    monkeypatch.setattr(python, "CHUNKED_FROM", 100)
    monkeypatch.setattr(python, "CHUNK_LINES", 3)
    chunked = python.parse(source, "x.py")
    assert len(whole.references) > 300 and not whole.problems
    assert chunked == whole
    broken = python.parse(source + "def broken(:\n    pass\n", "x.py")
    assert [p.message for p in broken.problems] == [f"not valid Python (line {source.count(chr(10)) + 1}: invalid syntax)"]


# One example per row of the loader registry (monitor/refs/loaders.py): adding a loader is one row
# there and one row here; test_every_loader_row_has_an_example fails until both exist.
LOADER_EXAMPLES = [
    (("from_pretrained", ("PeftModel", "PeftMixedModel")), 'from peft import PeftModel\nPeftModel.from_pretrained(base, "org/adapter")',
     ("org/adapter", "model")),
    (("from_pretrained", ()), 'Llama.from_pretrained(repo_id="org/gguf", filename="*q4.gguf")', ("org/gguf", "model")),
    (("pipeline", ()), 'pipeline("fill-mask", model="org/p")', ("org/p", "model")),
    (("load_adapter", ()), 'model.load_adapter("org/lora")', ("org/lora", "model")),
    (("load_lora_weights", ()), 'pipe.load_lora_weights("org/sdxl-lora", weight_name="x.safetensors")', ("org/sdxl-lora", "model")),
    (("load_lora_adapter", ()), 'controlnet.load_lora_adapter("org/control-lora")', ("org/control-lora", "model")),
    (("load_ip_adapter", ()), 'pipe.load_ip_adapter("h94/IP-Adapter", subfolder="models")', ("h94/IP-Adapter", "model")),
    (("load_textual_inversion", ()), 'pipe.load_textual_inversion("sd-concepts-library/cat-toy")',
     ("sd-concepts-library/cat-toy", "model")),
    (("hf_hub_download", ()), 'hf_hub_download("org/k", "x", repo_type="kernel")', ("org/k", "kernel")),
    (("snapshot_download", ()), 'snapshot_download(repo_id="org/s", repo_type="space")', ("org/s", "space")),
    (("hf_hub_url", ()), 'hf_hub_url("org/u", "f.bin")', ("org/u", "model")),
    (("load_dataset", ()), 'load_dataset("org/d", "sub")', ("org/d", "dataset")),
    (("load_dataset_builder", ()), 'load_dataset_builder("org/b")', ("org/b", "dataset")),
    (("load", ("evaluate",)), 'import evaluate\nevaluate.load("accuracy")', ("evaluate-metric/accuracy", "space")),
    (("SentenceTransformer", ()), 'SentenceTransformer("all-MiniLM-L6-v2")', ("sentence-transformers/all-MiniLM-L6-v2", "model")),
    (("CrossEncoder", ()), 'CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")', ("cross-encoder/ms-marco-MiniLM-L6-v2", "model")),
    (("SparseEncoder", ()), 'SparseEncoder("naver/splade-v3")', ("naver/splade-v3", "model")),
    (("Trainer", ()), 'trainer = SFTTrainer(model="Qwen/Qwen2.5-0.5B", train_dataset=ds)', ("Qwen/Qwen2.5-0.5B", "model")),
    (("create_model", ("timm", "open_clip")), 'import timm\ntimm.create_model("hf-hub:timm/vit_base.augreg_in21k", pretrained=True)',
     ("timm/vit_base.augreg_in21k", "model")),
    (("create_model_and_transforms", ("open_clip",)),
     'import open_clip\nopen_clip.create_model_and_transforms("hf-hub:laion/CLIP-ViT-g-14")', ("laion/CLIP-ViT-g-14", "model")),
    (("create_model_from_pretrained", ("open_clip",)),
     'from open_clip import create_model_from_pretrained\ncreate_model_from_pretrained("hf-hub:org/clip")', ("org/clip", "model")),
    (("get_tokenizer", ("open_clip",)), 'import open_clip\nopen_clip.get_tokenizer("hf-hub:org/tok")', ("org/tok", "model")),
    (("LLM", ("vllm",)), 'from vllm import LLM\nLLM(model="org/vllm-model")', ("org/vllm-model", "model")),
    (("load", ("mlx_lm",)), 'from mlx_lm import load\nmodel, tok = load("mlx-community/Qwen3-4B-4bit")',
     ("mlx-community/Qwen3-4B-4bit", "model")),
    (("get_kernel", ("kernels",)), 'from kernels import get_kernel\nget_kernel("kernels-community/activation")',
     ("kernels-community/activation", "kernel")),
]


def test_every_loader_row_has_an_example():
    from monitor.refs.loaders import LOADERS

    rows = {(r.name, r.owners or r.modules) for r in LOADERS}
    assert rows == {key for key, _, _ in LOADER_EXAMPLES}


@pytest.mark.parametrize("key,source,expected", LOADER_EXAMPLES, ids=[f"{k[0]}{list(k[1])}" for k, _, _ in LOADER_EXAMPLES])
def test_loader_row(key, source, expected):
    assert [(r.repo, r.type) for r in python.parse(source, "x.py").references] == [expected]


@pytest.mark.parametrize("source", [
    'from mylib import load\nload("org/not-mlx")',           # a generic name from another module
    'import timm\ntimm.create_model("vit_base_patch16_224")',  # a built-in architecture, not the Hub
    'LLM(model="org/not-vllm")',                               # LLM not imported from vllm
    'Trainer(model=model)',                                    # a model object: not a name, not unresolved
    'PeftConfig.from_pretrained("org/x", "not/the-repo")',     # PeftConfig takes the repo first
])
def test_loader_rows_do_not_over_match(source):
    p = python.parse(source, "x.py")
    assert [r.repo for r in p.references if r.repo == "not/the-repo" or "not" in r.repo] == [] and not p.unresolved


def test_peft_config_reads_its_first_argument():
    assert [r.repo for r in python.parse('PeftConfig.from_pretrained("org/adapter")', "x.py").references] == ["org/adapter"]


@pytest.mark.parametrize("source,expected", [
    ('pd.read_parquet("hf://datasets/org/ds@v1.0/data/train.parquet")', [("org/ds", "dataset", "v1.0")]),
    ('load_dataset("parquet", data_files={"train": "hf://datasets/org/ds@refs%2Fconvert%2Fparquet/x.parquet"})',
     [("org/ds", "dataset", "refs/convert/parquet")]),
    ('fs.open("hf://org/model/config.json")', [("org/model", "model", None)]),
    ('load_image("https://huggingface.co/datasets/org/imgs/resolve/main/a.png")', [("org/imgs", "dataset", "main")]),
    (f'requests.get("https://huggingface.co/org/m/resolve/{SHA}/config.json")', [("org/m", "model", SHA)]),
    ('"""see hf://datasets/org/in-docstring"""', []),
])
def test_hub_urls_in_call_arguments(source, expected):
    assert [(r.repo, r.type, r.revision) for r in python.parse(source, "x.py").references] == expected


_STATEMENTS = st.lists(st.sampled_from([
    'M = "org/a"\n', 'M = "org/b"\n', 'AutoModel.from_pretrained(M)\n', 'load_dataset("org/d")\n',
    'D = """\nAutoModel.from_pretrained("evil/doc")\n"""\n', 'x = (\nAutoModel.from_pretrained("org/p")\n)\n',
    'if cond:\n    M = "org/c"\nelse:\n    pass\n', '@dec\ndef f(m="org/f"):\n    return AutoModel.from_pretrained(m)\n',
    'try:\n    M = "org/t"\nexcept E:\n    M = "org/e"\n', 'class C:\n    m: str = field(default="org/field-model")\n',
    'pipeline("x", model=M)  # hubwatch: ignore[unpinned]\n', 'def broken(:\n', '\r\n', 'y = 1 + \\\n2\n',
]), max_size=30).map("".join)


@FUZZ
@given(_STATEMENTS)
def test_chunked_parse_equals_a_whole_parse_on_any_sequence_of_statements(source):
    whole = python.parse(source, "x.py")
    saved = python.CHUNKED_FROM, python.CHUNK_LINES
    python.CHUNKED_FROM, python.CHUNK_LINES = 0, 2
    try:
        chunked = python.parse(source, "x.py")
    finally:
        python.CHUNKED_FROM, python.CHUNK_LINES = saved
    if whole.problems:  # a broken file: both say so (a partial read may differ in how much it read)
        assert chunked.problems and chunked.problems[0].message.split(" (read up to")[0] == \
            whole.problems[0].message.split(" (read up to")[0]
    else:
        assert chunked == whole


def test_hub_ids_are_matched_to_their_very_end():
    from monitor.refs.model import is_hub_id

    assert is_hub_id("org/m") and not is_hub_id("org/m\n") and not is_hub_id("gpt2\n")
    assert [r.repo for r in python.parse('AutoModel.from_pretrained("org/m\\n")', "x.py").references] == []


@pytest.mark.parametrize("option,expected", [
    ("--model_name_or_path", [("org/m", "model")]), ("--base_model", [("org/m", "model")]),
    ("--data_path", [("org/m", "dataset")]), ("--dataset_name", [("org/m", "dataset")]),
    ("--model", [("org/m", "model")]), ("--teacher_model", [("org/m", "model")]),
    ("--model_type", []), ("--tokenizer_class", []), ("--output_dir", []), ("--hub_model_id", []),
])
def test_argparse_defaults_of_load_options_only(option, expected):
    p = python.parse(f'p.add_argument("{option}", type=str, default="org/m")', "x.py")
    assert [(r.repo, r.type) for r in p.references] == expected
    assert all(r.source == "default" for r in p.references)
    # a legacy name as the default of a type option is not a load either
    assert python.parse(f'p.add_argument("--model_type", default="gpt2")', "x.py").references == ()
