"""Hub references in YAML and JSON config files (training recipes, adapter and model configs).

A reference is the string value of a key that names a repo to load (`model_name_or_path`,
`base_model`, `dataset_name` ...); its revision is a sibling `model_revision` /
`dataset_revision` / `revision` (axolotl: `revision_of_model`). Generic keys (`model`, `dataset`,
`tokenizer`) count only for an `org/name` value, since `model: bert` is as often a local choice as
a Hub id; a single name under a specific key is a reference when it is a legacy Hub name and
`ambiguous` otherwise. Tool semantics:

- lm-evaluation-harness tasks: `dataset_path` is the repo and `dataset_name` its subset (one
  reference; never a repo of its own in a task); a task's `include:` (often an extensionless
  `*_yaml` template next to it) is read for the `dataset_path` the task inherits;
- axolotl: `datasets: [{path: org/ds}]` (also `test_datasets`, `pretraining_dataset`);
- LLaMA-Factory: `dataset_dir: REMOTE:org/ds` and dataset_info.json's `hf_hub_url`;
- a value equal to the file's `output_dir` / `hub_model_id` is what it saves to: local.

YAML is composed, never constructed: the node graph carries line numbers, creates no Python
object from tags, and an alias bomb is walked once per node (visited set, node cap). JSON keeps
no positions, so a value's line is found by looking its `"key": "value"` text up in order.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict, deque
from dataclasses import replace
from functools import lru_cache
from typing import Any, Iterator

import yaml

from monitor.refs import legacy
from monitor.refs.model import NotRegular, Parsed, Problem, Reference, Unresolved, is_hub_id, read_regular
from monitor.refs.python import _FILE_SUFFIXES, PACKAGED_BUILDERS, ignores

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000  # per file: a bound on hostile or generated configs

_ANY_MODEL = ("model_name_or_path", "pretrained_model_name_or_path", "base_model_name_or_path",
              "_name_or_path", "tokenizer_name_or_path", "tokenizer_name", "model_id", "model_name",
              "teacher_model_name_or_path", "reward_model_name_or_path", "ref_model_name_or_path")
_SLASH_MODEL = ("model", "base_model", "tokenizer", "ref_model", "reward_model", "teacher_model", "model_path")
_ANY_DATASET = ("dataset_name", "dataset_id", "dataset_name_or_path", "dataset_path", "hf_hub_url")
_SLASH_DATASET = ("dataset", "datasets")
KEYS: dict[str, tuple[str, bool]] = {  # key -> (type, needs "org/name")
    **{k: ("model", False) for k in _ANY_MODEL}, **{k: ("model", True) for k in _SLASH_MODEL},
    **{k: ("dataset", False) for k in _ANY_DATASET}, **{k: ("dataset", True) for k in _SLASH_DATASET}}
REVISION_KEYS = {"model": ("model_revision", "revision", "revision_of_model"), "dataset": ("dataset_revision", "revision")}
_DATASET_LISTS = frozenset({"datasets", "test_datasets", "pretraining_dataset", "rl_datasets"})
_SAVE_KEYS = frozenset({"output_dir", "hub_model_id", "save_dir"})
_LM_EVAL = frozenset({"dataset_path", "include", "task"})  # a mapping with one of these is an lm-eval task
REMOTE = "REMOTE:"
MAX_INCLUDES = 4  # lm-eval include chain depth
# The bytes a file must contain to be worth parsing: every key above contains one of these.
TRIGGERS = (b"model", b"dataset", b"hf_hub_url")
_STR_TAG = "tag:yaml.org,2002:str"


def _accept(key: str, value: Any) -> tuple[str, str, bool] | None:
    """-> (repo, type, ambiguous) for a watched key's value, else None."""
    spec = KEYS.get(key) if isinstance(key, str) else None
    if spec is None or not isinstance(value, str):
        return None
    if not is_hub_id(value) or value.lower().endswith(_FILE_SUFFIXES):
        return None
    if "/" not in value:
        if spec[1] or value.lower() in PACKAGED_BUILDERS:
            return None
        return value, spec[0], not legacy.is_legacy(value, spec[0])
    return value, spec[0], False


def parse_yaml(raw: bytes | str, file: str) -> Parsed:
    refs: list[Reference] = []
    unresolved: list[Unresolved] = []
    try:
        for doc in yaml.compose_all(raw, Loader=_LOADER):
            if doc is not None:
                _yaml_refs(doc, file, refs, unresolved)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        why = " ".join(str(getattr(e, "problem", None) or e).split())[:120]  # PyYAML's own text spans lines
        return Parsed(problems=(Problem(file, f"not valid YAML{where}: {why}"),))
    except (RecursionError, MemoryError, ValueError) as e:
        return Parsed(problems=(Problem(file, f"YAML not parsed ({type(e).__name__})"),))
    except _TooBig:
        return Parsed(*_waived(raw, refs, unresolved),
                      problems=(Problem(file, f"more than {MAX_NODES} YAML nodes: not fully read"),))
    return Parsed(*_waived(raw, refs, unresolved))


def _waived(raw: bytes | str, refs: list[Reference], unresolved: list[Unresolved]) -> tuple[tuple, tuple]:
    """`# hubwatch: ignore[...]` on a YAML line waives what that line names, as in Python."""
    marks = ignores(raw)
    if not marks:
        return tuple(refs), tuple(unresolved)
    return (tuple(replace(r, suppressed=tuple(sorted(marks[r.line]))) if r.line in marks else r for r in refs),
            tuple(replace(u, suppressed=tuple(sorted(marks[u.line]))) if u.line in marks else u for u in unresolved))


class _TooBig(Exception):
    pass


def _yaml_refs(root: yaml.Node, file: str, refs: list[Reference], unresolved: list[Unresolved]) -> None:
    """Appends to `refs` as it goes, so what was found before a cap is kept."""
    seen, stack = set(), [(root, None)]
    saved: set[str] = set()
    found: list[Reference] = []
    while stack:
        node, parent_key = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            refs.extend(r for r in found if isinstance(r, Reference) and r.repo not in saved)
            unresolved.extend(r for r in found if isinstance(r, Unresolved))
            raise _TooBig
        if isinstance(node, yaml.SequenceNode):
            stack.extend((v, parent_key) for v in reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            scalars = {k.value: v for k, v in node.value
                       if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode) and v.tag == _STR_TAG}
            siblings = {k: n.value for k, n in scalars.items()}
            task = node is root and bool(_LM_EVAL & set(siblings))
            flags = _remote_code(node)
            for key in _SAVE_KEYS & set(siblings):
                saved.add(siblings[key])
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                values = [value] if isinstance(value, yaml.ScalarNode) else (
                    [v for v in value.value if isinstance(v, yaml.ScalarNode)]
                    if isinstance(value, yaml.SequenceNode) and name in KEYS else [])
                for v in values:
                    if v.tag != _STR_TAG:
                        continue
                    found.extend(_mapping_hit(name, v, siblings, parent_key, task, file, flags))
            stack.extend((v, k.value if isinstance(k, yaml.ScalarNode) else None) for k, v in reversed(node.value))
    refs.extend(r for r in found if isinstance(r, Reference) and r.repo not in saved)
    unresolved.extend(r for r in found if isinstance(r, Unresolved))


def _mapping_hit(name: str | None, v: yaml.ScalarNode, siblings: dict[str, Any], parent_key: str | None,
                 task: bool, file: str, flags: tuple[bool, bool] = (False, False)) -> list[Reference | Unresolved]:
    """`flags`: (this mapping says trust_remote_code, its dataset/model kwargs say it)."""
    line, text = v.start_mark.line + 1, v.value
    remote = flags[0] or flags[1]
    if name == "dataset_name" and task:
        if "dataset_path" in siblings:
            return []  # the subset of this task's dataset_path (reported there)
        path, unreadable = _included_path(file, siblings.get("include"))
        if unreadable:  # the task loads a dataset we cannot name: fail closed
            return [Unresolved(file, line, "dataset_name", f"include {unreadable[:80]} not readable")]
        if path is None:
            return []
        hit = _accept("dataset_path", path)
        return [Reference(hit[0], "dataset", file, line, None, "dataset_path", subset=text, ambiguous=hit[2],
                          remote_code=remote)] if hit else []
    if name == "dataset_path" and task:
        hit = _accept(name, text)
        sub = siblings.get("dataset_name")
        return [Reference(hit[0], "dataset", file, line, None, name, subset=sub if isinstance(sub, str) else None,
                          ambiguous=hit[2], remote_code=remote)] if hit else []
    if name in ("path", "id") and parent_key in _DATASET_LISTS:
        hit = _accept("dataset_name", text)
        if hit and ("/" in text or not hit[2]):
            sub = next((siblings[k] for k in ("name", "config") if isinstance(siblings.get(k), str)), None)
            return [Reference(hit[0], "dataset", file, line, _revision("dataset", siblings), f"{parent_key}[].{name}",
                              subset=sub, remote_code=remote)]
        return []
    if name == "dataset_dir" and text.startswith(REMOTE):
        hit = _accept("dataset_id", text[len(REMOTE):])
        return [Reference(hit[0], "dataset", file, line, None, name, ambiguous=hit[2])] if hit else []
    hit = _accept(name, text) if name is not None else None
    if not hit:
        return []
    subset = siblings.get("subset") if name == "hf_hub_url" and isinstance(siblings.get("subset"), str) else None
    # a recipe's top-level trust_remote_code is the model's (TRL's ModelConfig, axolotl); kwargs name their own
    return [Reference(hit[0], hit[1], file, line, _revision(hit[1], siblings), name, ambiguous=hit[2], subset=subset,
                      remote_code=(flags[0] and hit[1] == "model") or flags[1])]


_OFF = frozenset({"false", "no", "off", "n", "0", "null", "~", ""})
_KWARGS = frozenset({"dataset_kwargs", "model_kwargs", "model_init_kwargs"})


def _remote_code(node: yaml.MappingNode) -> tuple[bool, bool]:
    """`trust_remote_code: true` in this mapping or in its `dataset_kwargs` (lm-eval tasks) /
    `model_kwargs` / `model_init_kwargs`: the loads it names run the repo's code. Only a plain
    false/null is off (fail closed)."""
    own = kwargs = False
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        if key.value == "trust_remote_code":
            own = own or not (isinstance(value, yaml.ScalarNode) and value.value.strip().lower() in _OFF)
        elif key.value in _KWARGS and isinstance(value, yaml.MappingNode):
            kwargs = kwargs or any(isinstance(k, yaml.ScalarNode) and k.value == "trust_remote_code" and not (
                isinstance(v, yaml.ScalarNode) and v.value.strip().lower() in _OFF) for k, v in value.value)
    return own, kwargs


def _included_path(file: str, include: Any, depth: int = 0) -> tuple[str | None, str | None]:
    """(the `dataset_path` an lm-eval task inherits through `include:`, or None; the include that
    could not be read, or None)."""
    if not isinstance(include, str) or depth >= MAX_INCLUDES:
        return None, None
    if "\x00" in include:
        return None, include.replace("\x00", "?")
    path = os.path.normpath(os.path.join(os.path.dirname(file), include))
    keys = _include_keys(path)
    if keys is None:
        return None, include
    if isinstance(keys.get("dataset_path"), str):
        return keys["dataset_path"], None
    return _included_path(path, keys.get("include"), depth + 1)


@lru_cache(maxsize=512)
def _include_keys(path: str) -> dict[str, str] | None:
    """The top-level string keys of an included YAML file (read once per scan process: a template
    serves dozens of tasks); None when it is not a readable regular file of at most 2 MB."""
    try:
        raw = read_regular(path, 2_000_000)
        if len(raw) > 2_000_000:
            return None
        doc = yaml.compose(raw, Loader=_LOADER)
    except (NotRegular, OSError, yaml.YAMLError, RecursionError, ValueError):
        return None
    if not isinstance(doc, yaml.MappingNode):
        return None
    return {k.value: v.value for k, v in doc.value
            if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode) and v.tag == _STR_TAG}


def _revision(rtype: str, siblings: dict[str, Any]) -> str | None:
    for key in REVISION_KEYS[rtype]:
        value = siblings.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_json(raw: bytes | str, file: str) -> Parsed:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        return Parsed(problems=(Problem(file, f"not valid JSON: {str(e)[:80]}"),))
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    lines = _json_lines(text)
    refs: list[Reference] = []
    try:
        for key, repo, rtype, rev, ambiguous, subset, remote in _json_hits(doc):
            refs.append(Reference(repo, rtype, file, lines[(key, repo)].popleft() if lines[(key, repo)] else 1,
                                  rev, key, ambiguous=ambiguous, subset=subset, remote_code=remote))
    except _TooBig:
        return Parsed(tuple(refs), problems=(Problem(file, f"more than {MAX_NODES} JSON nodes: not fully read"),))
    return Parsed(tuple(refs))


def _json_remote_code(parent: dict | None, rtype: str) -> bool:
    """As `_remote_code`, for a JSON object (its own flag counts for a model)."""
    if not isinstance(parent, dict):
        return False
    objs = ([parent] if rtype == "model" else []) + [parent[k] for k in _KWARGS if isinstance(parent.get(k), dict)]
    return any("trust_remote_code" in o and not (o["trust_remote_code"] in (False, None) or
                                                 str(o["trust_remote_code"]).strip().lower() in _OFF) for o in objs)


def _json_hits(doc: Any) -> Iterator[tuple[str, str, str, str | None, bool, str | None, bool]]:
    """Depth first in document order, as the line scan below meets them."""
    stack: list[tuple[Iterator[Any], dict | None]] = [(iter([doc]), None)]
    count = 0
    while stack:
        it, parent = stack[-1]
        item = next(it, _END)
        if item is _END:
            stack.pop()
            continue
        count += 1
        if count > MAX_NODES:
            raise _TooBig
        key, value = item if parent is not None else (None, item)
        for v in value if isinstance(value, list) and key in KEYS else [value]:
            hit = _accept(key, v) if key is not None else None
            if hit:
                sub = parent.get("subset") if key == "hf_hub_url" and isinstance(parent, dict) else None
                yield (key, hit[0], hit[1], _revision(hit[1], parent), hit[2], sub if isinstance(sub, str) else None,
                       _json_remote_code(parent, hit[1]))
        if isinstance(value, dict):
            stack.append((iter(value.items()), value))
        elif isinstance(value, list):
            stack.append((iter(value), None))


_END = object()
_KEY = re.compile(r'"(' + "|".join(sorted(map(re.escape, KEYS), key=len, reverse=True)) + r')"\s*:\s*')
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"')
_GAP = re.compile(r"[\s,]*")


def _json_lines(text: str) -> defaultdict[tuple[str, str], deque[int]]:
    """(key, value) -> the lines it occurs on, in order: JSON parsers keep no positions, so one
    linear pass over the text finds each watched key and the string (or strings) after it."""
    out: defaultdict[tuple[str, str], deque[int]] = defaultdict(deque)
    line, last = 1, 0
    for m in _KEY.finditer(text):
        found, pos = [], m.end()
        if text.startswith("[", pos):
            pos += 1
            while (s := _STRING.match(text, _GAP.match(text, pos).end())) is not None:
                found.append(s)
                pos = s.end()
        elif (s := _STRING.match(text, pos)) is not None:
            found.append(s)
        for s in found:
            line += text.count("\n", last, s.start())
            last = s.start()
            try:
                out[(m.group(1), json.loads(s.group()))].append(line)
            except ValueError:
                continue
    return out
