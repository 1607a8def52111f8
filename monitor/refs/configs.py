"""Hub references in YAML and JSON config files (training recipes, adapter and model configs).

A reference is the string value of a key that names a repo to load (`model_name_or_path`,
`base_model`, `dataset_name` ...); its revision is a sibling `model_revision` /
`dataset_revision` / `revision`. Generic keys (`model`, `dataset`, `tokenizer`) count only for an
`org/name` value, since `model: bert` is as often a local choice as a Hub id.

YAML is composed, never constructed: the node graph carries line numbers, creates no Python
object from tags, and an alias bomb is walked once per node (visited set, node cap). JSON keeps
no positions, so a value's line is found by looking its `"key": "value"` text up in order.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import yaml

from monitor.refs.model import Parsed, Problem, Reference, is_hub_id

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000  # per file: a bound on hostile or generated configs

_ANY_MODEL = ("model_name_or_path", "pretrained_model_name_or_path", "base_model_name_or_path",
              "_name_or_path", "tokenizer_name_or_path", "tokenizer_name", "model_id", "model_name",
              "teacher_model_name_or_path", "reward_model_name_or_path", "ref_model_name_or_path")
_SLASH_MODEL = ("model", "base_model", "tokenizer", "ref_model", "reward_model", "teacher_model", "model_path")
_ANY_DATASET = ("dataset_name", "dataset_id", "dataset_name_or_path")
_SLASH_DATASET = ("dataset", "datasets", "dataset_path")
KEYS: dict[str, tuple[str, bool]] = {  # key -> (type, needs "org/name")
    **{k: ("model", False) for k in _ANY_MODEL}, **{k: ("model", True) for k in _SLASH_MODEL},
    **{k: ("dataset", False) for k in _ANY_DATASET}, **{k: ("dataset", True) for k in _SLASH_DATASET}}
REVISION_KEYS = {"model": ("model_revision", "revision"), "dataset": ("dataset_revision", "revision")}
# The bytes a file must contain to be worth parsing: every key above contains one of these.
TRIGGERS = (b"model", b"dataset")
_STR_TAG = "tag:yaml.org,2002:str"


def _accept(key: str, value: Any) -> tuple[str, str] | None:
    spec = KEYS.get(key) if isinstance(key, str) else None
    if spec is None or not isinstance(value, str) or not is_hub_id(value):
        return None
    if spec[1] and "/" not in value:
        return None
    return value, spec[0]


def parse_yaml(raw: bytes | str, file: str) -> Parsed:
    refs: list[Reference] = []
    try:
        for doc in yaml.compose_all(raw, Loader=_LOADER):
            if doc is not None:
                refs += _yaml_refs(doc, file)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return Parsed(problems=(Problem(file, f"not valid YAML{where}: {getattr(e, 'problem', None) or e}"),))
    except (RecursionError, MemoryError, ValueError) as e:
        return Parsed(problems=(Problem(file, f"YAML not parsed ({type(e).__name__})"),))
    except _TooBig:
        return Parsed(tuple(refs), problems=(Problem(file, f"more than {MAX_NODES} YAML nodes: not fully read"),))
    return Parsed(tuple(refs))


class _TooBig(Exception):
    pass


def _yaml_refs(root: yaml.Node, file: str) -> list[Reference]:
    refs, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            raise _TooBig
        if isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            scalars = {k.value: v for k, v in node.value
                       if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode) and v.tag == _STR_TAG}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                values = [value] if isinstance(value, yaml.ScalarNode) else (
                    [v for v in value.value if isinstance(v, yaml.ScalarNode)]
                    if isinstance(value, yaml.SequenceNode) and name in KEYS else [])
                for v in values:
                    hit = _accept(name, v.value) if v.tag == _STR_TAG else None
                    if hit:
                        revision = _revision(hit[1], {k: n.value for k, n in scalars.items()})
                        refs.append(Reference(hit[0], hit[1], file, v.start_mark.line + 1, revision, name))
            stack.extend(reversed([v for _, v in node.value]))
    return refs


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
    lines = _LineFinder(text)
    refs = [Reference(repo, rtype, file, lines.find(key, repo), rev, key)
            for key, repo, rtype, rev in _json_hits(doc)]
    return Parsed(tuple(refs))


def _json_hits(doc: Any) -> Iterator[tuple[str, str, str, str | None]]:
    """Depth first in document order, so the line finder can search forward."""
    stack: list[Iterator[Any]] = [iter([doc])]
    count = 0
    while stack and count < MAX_NODES:
        node = next(stack[-1], _END)
        if node is _END:
            stack.pop()
            continue
        count += 1
        if isinstance(node, list):
            stack.append(iter(node))
        elif isinstance(node, dict):
            for key, value in node.items():
                for v in value if isinstance(value, list) and key in KEYS else [value]:
                    hit = _accept(key, v)
                    if hit:
                        yield key, hit[0], hit[1], _revision(hit[1], node)
            stack.append(iter([v for v in node.values() if isinstance(v, (dict, list))]))


_END = object()


class _LineFinder:
    """Line of a `"key": "value"` pair, searched forward in document order (JSON keeps no positions)."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def find(self, key: str, value: str) -> int:
        token = re.escape(json.dumps(value, ensure_ascii=False))
        for pattern in (re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:\s*\[?[^\]]*?" + token, token):
            m = re.compile(pattern).search(self.text, self.pos) or re.compile(pattern).search(self.text)
            if m:
                self.pos = m.end()
                return self.text.count("\n", 0, m.end()) + 1
        return 1
