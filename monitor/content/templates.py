"""Chat templates: where they are, and what a change to one adds.

Sources: `tokenizer_config.json` (`chat_template`: a string, or a list of {name, template}),
`chat_template.jinja`, `chat_template.json` ({"chat_template": ...}), transformers' named extras
`additional_chat_templates/<name>.jinja`, and a GGUF header (monitor/content/gguf.py). Untrusted
JSON is parsed bounded; a source that cannot be read raises TemplateSourceError (one line), which
the caller reports as not inspected.

Analysis parses the template with jinja2 (the sandboxed environment transformers uses, with its
`loopcontrols` and `{% generation %}` tags) and walks the syntax tree; nothing is ever rendered.
Rules (docs/content.md, "Chat templates"):
  - chat_template_changed (medium): any change, with a compact unified diff;
  - chat_template_code (critical): after constant folding (`~`, `+`, `*`, `%`, `|join`, `|format`,
    `|replace`, ..., string escapes, `{% set %}` constants, loop variables over constant lists,
    namespace attributes), an attribute, item or `|attr()`/`map(attribute=)` access to a name
    starting with `_`, a non-constant `|attr()` (or attribute filter argument), any attribute of
    `cycler`, `joiner` or `lipsum`, a dunder name (`__x__`) built as a constant, `str.format` on
    a format string that reaches into attributes;
  - chat_template_injection (high): an added URL, added text matching a concealment or override
    phrase (template_rules.CONCEALMENT_PHRASES), a test on message content against a literal that
    does not look like one of the template's special tokens.
On an update, the code and injection rules fire only for what the new side ADDED (absent from
every old template), so real updates stay at chat_template_changed.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from monitor.content.template_rules import (
    URL_RE,
    looks_like_special_token,
    normalise,
    phrase_counts,
    visible,
)

TEMPLATE_FILES: tuple[str, ...] = ("tokenizer_config.json", "chat_template.jinja", "chat_template.json")
EXTRA_TEMPLATE_DIR = "additional_chat_templates"

MAX_JSON_CHARS = 16 * 1024 * 1024     # a tokenizer_config.json larger than this is not read
MAX_TEMPLATE_CHARS = 256_000          # one template larger than this is not analysed (real ones: < 30,000)
MAX_DIFF_CHARS = 4000                 # the unified diff carried by a verdict
MAX_DIFF_LINE = 240
MAX_HITS = 24                         # hits kept per verdict (the most severe first)
MAX_FOLD_CHARS = 65_536               # a folded constant longer than this is "not constant"
MAX_CANDIDATES = 16                   # values one expression may fold to (branches, loops)
MAX_FOLD_DEPTH = 120                  # deeper expressions fold to "not constant"
NAME_ROUNDS = 6                       # fixpoint rounds over the assigned names' values
MAX_BINDINGS = 256                    # assignments of one name followed (more: "not constant")

SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
CHANGED, CODE, INJECTION = "chat_template_changed", "chat_template_code", "chat_template_injection"
RULE_SEVERITY = {CHANGED: "medium", CODE: "critical", INJECTION: "high"}

SANDBOX_GLOBALS = frozenset({"cycler", "joiner", "lipsum"})
# filters whose argument names an attribute (make_attrgetter: dotted paths allowed)
ATTRIBUTE_FILTERS = frozenset({"map", "select", "reject", "selectattr", "rejectattr", "sort", "groupby",
                               "sum", "unique", "min", "max", "dictsort"})
CONTENT_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "index", "rindex", "count",
                             "split", "rsplit", "partition", "rpartition", "replace"})
_PASSTHROUGH_FILTERS = frozenset({"trim", "lower", "upper", "string", "replace", "first", "last", "join",
                                  "striptags", "truncate", "wordwrap", "indent", "center", "title",
                                  "capitalize", "default", "d", "safe", "e", "escape", "forceescape",
                                  "reverse", "list"})
COMPARE_OPS = frozenset({"eq", "ne", "in", "notin"})
COMPARE_TESTS = frozenset({"eq", "equalto", "==", "ne", "!=", "in", "sameas"})
DUNDER_RE = re.compile(r"__[A-Za-z]\w*__")
PRIVATE_NAME_RE = re.compile(r"_[A-Za-z_]\w*")    # a whole constant naming a private attribute
FORMAT_REACH_RE = re.compile(r"\{[^{}]*[.\[][^{}]*\}")


class TemplateSourceError(ValueError):
    """A template source (JSON) that cannot be read; the message is one line."""


# ---------------------------------------------------------------------------------- sources

def _load_json(text: str, what: str) -> Any:
    if len(text) > MAX_JSON_CHARS:
        raise TemplateSourceError(f"{what}: {len(text):,} characters, more than {MAX_JSON_CHARS:,}")
    try:
        return json.loads(text)
    except RecursionError:
        raise TemplateSourceError(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:
        raise TemplateSourceError(f"{what}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None


def _templates_value(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for item in value:
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                    and isinstance(item.get("template"), str)):
                raise TemplateSourceError(f"{what}: chat_template list entry is not {{name, template}}")
            if item["name"] in out:
                raise TemplateSourceError(f"{what}: two chat templates named {visible(item['name'], 60)!r}")
            out[item["name"]] = item["template"]
        return out
    raise TemplateSourceError(f"{what}: chat_template is a {type(value).__name__}, not a string or a list")


def templates_from_tokenizer_config(text: str) -> dict[str, str]:
    """{"default": t} for a string chat_template, {name: t} for a list; {} when absent."""
    obj = _load_json(text, "tokenizer_config.json")
    if not isinstance(obj, dict):
        raise TemplateSourceError("tokenizer_config.json: not a JSON object")
    return _templates_value(obj.get("chat_template"), "tokenizer_config.json")


def templates_from_chat_template_json(text: str) -> dict[str, str]:
    obj = _load_json(text, "chat_template.json")
    if not isinstance(obj, dict):
        raise TemplateSourceError("chat_template.json: not a JSON object")
    return _templates_value(obj.get("chat_template"), "chat_template.json")


def templates_from_jinja_file(text: str) -> dict[str, str]:
    return {"default": text}


def is_template_file(path: str) -> bool:
    """A file that carries chat templates (at the repository's root, where transformers looks)."""
    if path in TEMPLATE_FILES:
        return True
    folder, name = posixpath.split(path)
    return folder == EXTRA_TEMPLATE_DIR and name.endswith(".jinja") and len(name) > len(".jinja")


def templates_from_file(path: str, text: str) -> dict[str, str]:
    """The templates one file carries, by its path (see is_template_file)."""
    if path == "tokenizer_config.json":
        return templates_from_tokenizer_config(text)
    if path == "chat_template.json":
        return templates_from_chat_template_json(text)
    if path == "chat_template.jinja":
        return templates_from_jinja_file(text)
    if is_template_file(path):
        return {posixpath.basename(path)[:-len(".jinja")]: text}
    raise TemplateSourceError(f"{path}: not a chat template file")


# ---------------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class TemplateHit:
    rule: str        # "chat_template_changed" | "chat_template_code" | "chat_template_injection"
    severity: str    # medium | critical | high
    template: str    # the template's name ("default", "tool_use", ...)
    detail: str      # one line: what fired


@dataclass(frozen=True)
class TemplateVerdict:
    hits: tuple[TemplateHit, ...]
    diff: str                    # compact unified diff old->new ("" when unchanged / baseline)
    not_inspected: str | None    # a template that could not be analysed (does not parse, too big)

    @property
    def severity(self) -> str:
        """The highest hit; a template not inspected counts as high."""
        best = "high" if self.not_inspected else "none"
        for hit in self.hits:
            if SEVERITY_RANK[hit.severity] > SEVERITY_RANK[best]:
                best = hit.severity
        return best


# ---------------------------------------------------------------------------------- parsing

class _GenerationTag(Extension):
    """transformers' `{% generation %}...{% endgeneration %}` (assistant masks), parsed only."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                     extensions=["jinja2.ext.loopcontrols", _GenerationTag])


def _parse(text: str) -> nodes.Template:
    return _ENV.parse(text)


# ---------------------------------------------------------------------------------- folding

class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


def _small(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FOLD_CHARS:
        return UNKNOWN
    if isinstance(value, (list, tuple)) and sum(len(v) for v in value if isinstance(v, str)) > MAX_FOLD_CHARS:
        return UNKNOWN
    return value


def _cap(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        value = _small(value)
        if len(out) >= MAX_CANDIDATES:
            if UNKNOWN not in out:
                out[-1] = UNKNOWN
            break
        if not any(value is v or (type(v) is type(value) and v == value) for v in out):
            out.append(value)
    return out


def _apply(fn: Callable[..., Any], *choices: list[Any]) -> list[Any]:
    results = []
    combos = itertools.product(*choices)
    for n, combo in enumerate(combos):
        if n >= MAX_CANDIDATES * 2:
            results.append(UNKNOWN)     # more combinations than followed: not constant
            break
        if any(v is UNKNOWN for v in combo):
            results.append(UNKNOWN)
            continue
        try:
            results.append(fn(*combo))
        except Exception:   # a constant operation that would fail at render time: not constant
            results.append(UNKNOWN)
    return _cap(results)


_FORMAT_SPEC_RE = re.compile(r"%[-#0 +]*(\d{4,}|\*)")


def _percent(fmt: Any, args: Any) -> Any:
    if not isinstance(fmt, str) or _FORMAT_SPEC_RE.search(fmt):
        return UNKNOWN
    return fmt % args


def _replace(s: Any, old: Any, new: Any) -> Any:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return UNKNOWN
    hits = len(s) + 1 if old == "" else s.count(old)
    if len(s) + hits * (len(new) - len(old)) > MAX_FOLD_CHARS:
        return UNKNOWN
    return s.replace(old, new)


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, (str, list)) and isinstance(b, int) and not isinstance(b, bool):
        return UNKNOWN if len(a) * max(b, 0) > MAX_FOLD_CHARS else a * b
    if isinstance(b, (str, list)) and isinstance(a, int) and not isinstance(a, bool):
        return _mul(b, a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a * b
    return UNKNOWN


def _join(seq: Any, sep: Any = "") -> Any:
    if isinstance(seq, dict):
        seq = list(seq)
    if isinstance(seq, (list, tuple, str)) and isinstance(sep, str):
        return sep.join(str(v) for v in seq)
    return UNKNOWN


def _seq(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return list(value)
    return UNKNOWN


_FILTERS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "format": lambda s, *a: _percent(s, tuple(a)),
    "replace": _replace,
    "lower": lambda s: s.lower() if isinstance(s, str) else UNKNOWN,
    "upper": lambda s: s.upper() if isinstance(s, str) else UNKNOWN,
    "capitalize": lambda s: s.capitalize() if isinstance(s, str) else UNKNOWN,
    "title": lambda s: s.title() if isinstance(s, str) else UNKNOWN,
    "trim": lambda s, chars=None: s.strip(chars) if isinstance(s, str) else UNKNOWN,
    "string": lambda s: s if isinstance(s, str) else str(s),
    "reverse": lambda s: s[::-1] if isinstance(s, (str, list, tuple)) else UNKNOWN,
    "first": lambda s: _seq(s)[0] if _seq(s) is not UNKNOWN else UNKNOWN,
    "last": lambda s: _seq(s)[-1] if _seq(s) is not UNKNOWN else UNKNOWN,
    "list": _seq,
    "sort": lambda s: sorted(_seq(s)) if _seq(s) is not UNKNOWN else UNKNOWN,
}
_STR_METHODS = frozenset({"join", "replace", "lower", "upper", "strip", "lstrip", "rstrip", "title",
                          "capitalize", "format"})


def _method(obj: Any, method: str, *args: Any) -> Any:
    if not isinstance(obj, str):
        return UNKNOWN
    if method == "join":
        return _join(args[0], obj) if len(args) == 1 else UNKNOWN
    if method == "replace":
        return _replace(obj, *args) if len(args) == 2 else UNKNOWN
    if method == "format":
        return UNKNOWN  # never executed: str.format reaches into attributes
    return getattr(obj, method)(*args)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    nodes.Add: lambda a, b: a + b if type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))) else UNKNOWN,
    nodes.Mul: _mul,
    nodes.Mod: _percent,
}


class _Analysis:
    """One parsed template: constant environment, content taint, and the facts the rules need."""

    def __init__(self, tree: nodes.Template):
        self.tree = tree
        self.all_nodes: list[nodes.Node] = []
        self.parents: dict[int, nodes.Node] = {}
        stack: list[nodes.Node] = [tree]
        while stack:
            node = stack.pop()
            self.all_nodes.append(node)
            for child in node.iter_child_nodes():
                self.parents[id(child)] = node
                stack.append(child)
        self.env: dict[str, list[tuple[str, Any]]] = {}
        self.memo: dict[int, list[Any]] = {}
        self.folding: set[int] = set()
        self._collect_assignments()
        self._solve_names()
        self._collect_taint()
        # facts
        self.code: dict[str, str] = {}          # detail -> detail (ordered set)
        self.texts: list[str] = []
        self.content_literals: dict[str, str] = {}
        self._rules()

    # -- environment
    def _bind(self, key: str, how: str, node: Any) -> None:
        self.env.setdefault(key, []).append((how, node))

    def _collect_assignments(self) -> None:
        for node in self.all_nodes:
            if isinstance(node, nodes.Assign):
                self._bind_target(node.target, "value", node.node)
                if isinstance(node.target, nodes.Name) and isinstance(node.node, nodes.Call) \
                        and isinstance(node.node.node, nodes.Name) and node.node.node.name == "namespace":
                    for kw in node.node.kwargs:
                        self._bind(f"{node.target.name}.{kw.key}", "value", kw.value)
            elif isinstance(node, nodes.AssignBlock):
                self._bind_target(node.target, "body", node.body)
            elif isinstance(node, nodes.For):
                self._bind_target(node.target, "item", node.iter)
            elif isinstance(node, nodes.With):
                for target, value in zip(node.targets, node.values):
                    self._bind_target(target, "value", value)

    def _bind_target(self, target: nodes.Node, how: str, value: Any) -> None:
        if isinstance(target, nodes.Name):
            self._bind(target.name, how, value)
        elif isinstance(target, nodes.NSRef):
            self._bind(f"{target.name}.{target.attr}", how, value)
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self._bind_target(item, "unknown", None)

    def _binding_values(self, how: str, value: Any) -> list[Any]:
        if how == "value":
            return self.fold(value)
        if how == "body":
            return self._fold_body(value, 0)
        if how == "item":
            out: list[Any] = []
            for seq in self.fold(value):
                seq = _seq(seq)
                if seq is UNKNOWN:
                    out.append(UNKNOWN)
                else:
                    out.extend(seq)
            return out
        return [UNKNOWN]

    def _solve_names(self) -> None:
        """The constant values of every assigned name, flow-insensitively: a fixpoint from "no
        value yet", so `{% set a = a ~ 'x' %}` chains are followed (a few rounds, capped)."""
        self.table: dict[str, list[Any]] = {key: [] for key in self.env}
        for _ in range(NAME_ROUNDS):
            self.memo.clear()
            changed = False
            for key, bindings in self.env.items():
                values: list[Any] = []
                for how, value in bindings[:MAX_BINDINGS]:
                    values.extend(self._binding_values(how, value))
                if len(bindings) > MAX_BINDINGS:
                    values.append(UNKNOWN)
                values = _cap(values)
                if values != self.table[key]:
                    self.table[key], changed = values, True
            if not changed:
                break
        for key, values in self.table.items():
            if not values:
                self.table[key] = [UNKNOWN]
        self.memo.clear()

    def _fold_body(self, body: list[nodes.Node], depth: int) -> list[Any]:
        parts = []
        for stmt in body:
            if not isinstance(stmt, nodes.Output):
                return [UNKNOWN]
            parts.extend(self.fold(n, depth + 1) for n in stmt.nodes)
        return _apply(lambda *xs: "".join(str(x) for x in xs), *parts)

    # -- folding
    def fold(self, node: Any, depth: int = 0) -> list[Any]:
        """The constant values `node` may take; UNKNOWN among them when it may take others."""
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if depth > MAX_FOLD_DEPTH or key in self.folding:
            return [UNKNOWN]
        self.folding.add(key)
        try:
            result = self._fold(node, depth)
        finally:
            self.folding.discard(key)
        self.memo[key] = result
        return result

    def _fold(self, node: Any, depth: int) -> list[Any]:
        d = depth + 1
        if isinstance(node, nodes.Const):
            return [node.value] if isinstance(node.value, (str, int, float, bool)) or node.value is None else [UNKNOWN]
        if isinstance(node, nodes.TemplateData):
            return [node.data]
        if isinstance(node, (nodes.List, nodes.Tuple)):
            items = [self.fold(i, d) for i in node.items]
            return _apply(lambda *xs: list(xs), *items)
        if isinstance(node, nodes.Dict):
            keys = [self.fold(p.key, d) for p in node.items]
            return _apply(lambda *ks: {k: None for k in ks}, *keys)
        if isinstance(node, nodes.Concat):
            return _apply(lambda *xs: "".join(str(x) for x in xs), *(self.fold(n, d) for n in node.nodes))
        if type(node) in _BINOPS:
            return _apply(_BINOPS[type(node)], self.fold(node.left, d), self.fold(node.right, d))
        if isinstance(node, nodes.CondExpr):
            return _cap(self.fold(node.expr1, d) + (self.fold(node.expr2, d) if node.expr2 is not None else [None]))
        if isinstance(node, nodes.Name):
            return list(self.table[node.name]) if node.name in self.env else [UNKNOWN]
        if isinstance(node, nodes.Getattr):
            if isinstance(node.node, nodes.Name) and f"{node.node.name}.{node.attr}" in self.env:
                return list(self.table[f"{node.node.name}.{node.attr}"])
            return [UNKNOWN]
        if isinstance(node, nodes.Slice):
            parts = [self.fold(p, d) if p is not None else [None] for p in (node.start, node.stop, node.step)]
            return _apply(lambda a, b, c: slice(a, b, c), *parts)
        if isinstance(node, nodes.Getitem):
            return _apply(lambda obj, i: obj[i] if isinstance(obj, (str, list, tuple)) and isinstance(i, (int, slice)) else UNKNOWN,
                          self.fold(node.node, d), self.fold(node.arg, d))
        if isinstance(node, nodes.Filter) and node.name in _FILTERS and node.node is not None \
                and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None:
            return _apply(_FILTERS[node.name], self.fold(node.node, d), *(self.fold(a, d) for a in node.args))
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "dict" \
                and not node.args and node.dyn_args is None and node.dyn_kwargs is None:
            keys = [kw.key for kw in node.kwargs]
            return [{k: None for k in keys}]
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) \
                and node.node.attr in _STR_METHODS and not node.kwargs \
                and node.dyn_args is None and node.dyn_kwargs is None:
            method = node.node.attr
            return _apply(lambda obj, *a: _method(obj, method, *a),
                          self.fold(node.node.node, d), *(self.fold(a, d) for a in node.args))
        return [UNKNOWN]

    def strings(self, node: Any) -> list[str]:
        out = []
        for value in self.fold(node):
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, (list, tuple, dict)):
                out.extend(v for v in value if isinstance(v, str))
        return out

    def prefixes(self, node: Any) -> list[str]:
        """Constant strings a partly constant expression starts with (`'_' ~ x`, `'__' + y`)."""
        while isinstance(node, (nodes.Concat, nodes.Add)):
            node = node.nodes[0] if isinstance(node, nodes.Concat) else node.left
        return [v for v in self.fold(node) if isinstance(v, str)]

    # -- content taint: which expressions carry message content (text), or its parts (dicts)
    def content_kind(self, node: Any, depth: int = 0) -> str | None:
        """"value" for message content text (or a slice, a trimmed/lowered copy, a macro's
        rendering of it), "part" for one element of a content list; None otherwise."""
        if depth > MAX_FOLD_DEPTH:
            return None
        d = depth + 1
        if isinstance(node, nodes.Name):
            loop = self._enclosing_loop(node)
            if loop is not None:    # a loop variable shadows the outer names inside its loop
                return "part" if self.content_kind(loop.iter, d) in ("value", "part") else None
            if node.name in self.value_names:
                return "value"
            if node.name in self.part_names:
                return "part"
            return "value" if "content" in node.name.lower() else None
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                key: Any = node.attr
                if isinstance(node.node, nodes.Name) and f"{node.node.name}.{node.attr}" in self.value_names:
                    return "value"
            else:
                key = node.arg.value if isinstance(node.arg, nodes.Const) else (
                    "[slice]" if isinstance(node.arg, nodes.Slice) else None)
            if key == "content":
                return "value"
            base = self.content_kind(node.node, d)
            if base == "value":
                if key == "[slice]":
                    return "value"
                return "part" if isinstance(key, int) or key is None else ("value" if key == "text" else None)
            if base == "part":
                return "value" if key in ("text", "content") else None
            return None
        if isinstance(node, nodes.Filter):
            if node.node is not None and node.name in _PASSTHROUGH_FILTERS:
                return "value" if self.content_kind(node.node, d) == "value" else None
            return None
        if isinstance(node, nodes.Call):
            if isinstance(node.node, nodes.Getattr) and self.content_kind(node.node.node, d) == "value":
                return "value"
            if isinstance(node.node, nodes.Name) and any(self.content_kind(a, d) == "value" for a in node.args):
                return "value"
            return None
        if isinstance(node, (nodes.Concat,)):
            return "value" if any(self.content_kind(n, d) == "value" for n in node.nodes) else None
        if isinstance(node, nodes.Add):
            return "value" if "value" in (self.content_kind(node.left, d), self.content_kind(node.right, d)) else None
        if isinstance(node, nodes.CondExpr):
            return "value" if "value" in (self.content_kind(node.expr1, d),
                                          self.content_kind(node.expr2, d) if node.expr2 else None) else None
        return None

    def _enclosing_loop(self, name: nodes.Name) -> nodes.For | None:
        child: Any = name
        parent = self.parents.get(id(name))
        while parent is not None:
            if isinstance(parent, nodes.For) and child is not parent.iter \
                    and name.name in {n.name for n in parent.target.find_all(nodes.Name)} | (
                        {parent.target.name} if isinstance(parent.target, nodes.Name) else set()):
                return parent
            child, parent = parent, self.parents.get(id(parent))
        return None

    def _collect_taint(self) -> None:
        self.value_names: set[str] = set()
        self.part_names: set[str] = set()
        for _ in range(4):
            before = len(self.value_names) + len(self.part_names)
            for key, bindings in self.env.items():
                for how, value in bindings:
                    if how == "value" and self.content_kind(value) == "value":
                        self.value_names.add(key)
                    elif how == "item" and self.content_kind(value) in ("value", "part"):
                        self.part_names.add(key)
                    elif how == "body" and any(isinstance(stmt, nodes.Output) and any(
                            self.content_kind(n) == "value" for n in stmt.nodes) for stmt in value):
                        self.value_names.add(key)
            if len(self.value_names) + len(self.part_names) == before:
                break

    # -- rules
    def _code(self, detail: str) -> None:
        self.code.setdefault(visible(detail), visible(detail))

    def _literal(self, literal: str, rewrite: bool = False) -> None:
        if not looks_like_special_token(literal):
            self.content_literals.setdefault(("rewrite " if rewrite else "") + normalise(literal),
                                             ("rewrite:" if rewrite else "") + literal)

    def _check_attribute_args(self, node: nodes.Filter | nodes.Test) -> None:
        positional_attr = node.name in ("selectattr", "rejectattr", "groupby", "sum")   # their first argument
        args: list[nodes.Node] = [kw.value for kw in node.kwargs if kw.key == "attribute"]
        if positional_attr and node.args:
            args.append(node.args[0])
        if node.name in ("map", "select", "reject") and node.args:
            names = self.fold(node.args[0])
            if UNKNOWN in names:
                self._code(f"|{node.name}() with a non-constant filter or test name")
            if "attr" in names and len(node.args) > 1:
                args.append(node.args[1])
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            self._code(f"|{node.name}() with *args/**kwargs")
        for arg in args:
            for value in self.fold(arg):
                if value is UNKNOWN:
                    self._code(f"|{node.name}() with a non-constant attribute name")
                elif isinstance(value, str) and any(part.startswith("_") for part in value.split(".")):
                    self._code(f"|{node.name}() reaching attribute {value!r}")

    def _rules(self) -> None:
        for node in self.all_nodes:
            if isinstance(node, nodes.Getattr):
                if node.attr.startswith("_"):
                    self._code(f"attribute .{node.attr}")
                if isinstance(node.node, nodes.Name) and node.node.name in SANDBOX_GLOBALS:
                    self._code(f"attribute of {node.node.name}: {node.node.name}.{node.attr}")
            elif isinstance(node, nodes.Getitem):
                for value in self.fold(node.arg):
                    if isinstance(value, str) and value.startswith("_"):
                        self._code(f"item [{value!r}]")
                for prefix in self.prefixes(node.arg):
                    if prefix.startswith("_"):
                        self._code(f"item [{prefix!r} ~ ...]")
                if isinstance(node.node, nodes.Name) and node.node.name in SANDBOX_GLOBALS:
                    self._code(f"item of {node.node.name}")
            elif isinstance(node, (nodes.Filter, nodes.Test)):
                if node.name == "attr":
                    values = self.fold(node.args[0]) if node.args else [UNKNOWN]
                    for value in values:
                        if value is UNKNOWN or not isinstance(value, str):
                            starts = [p for p in self.prefixes(node.args[0]) if p.startswith("_")] if node.args else []
                            self._code(f"|attr({starts[0]!r} ~ ...)" if starts else "|attr() with a non-constant name")
                        elif value.startswith("_"):
                            self._code(f"|attr({value!r})")
                    if isinstance(node.node, nodes.Name) and node.node.name in SANDBOX_GLOBALS:
                        self._code(f"|attr() of {node.node.name}")
                elif node.name in ATTRIBUTE_FILTERS:
                    self._check_attribute_args(node)
                if isinstance(node, nodes.Test) and node.name in COMPARE_TESTS and node.args:
                    self._compare(node.node, node.args[0])
                if isinstance(node, nodes.Filter) and node.name in ("selectattr", "rejectattr") \
                        and len(node.args) >= 3 and self._tests_content_attribute(node):
                    for literal in self.strings(node.args[2]):   # |selectattr('content', 'eq', 'x')
                        self._literal(literal)
            elif isinstance(node, nodes.Compare):
                left = node.expr
                for op in node.ops:
                    if op.op in COMPARE_OPS:
                        self._compare(left, op.expr)
                    left = op.expr
            elif isinstance(node, nodes.Keyword) and node.key.startswith("_"):
                self._code(f"keyword argument {node.key}=")
            elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
                method = node.node.attr
                if method in ("format", "format_map"):
                    for value in self.fold(node.node.node):
                        if value is UNKNOWN:
                            self._code(f"str.{method}() on a non-constant string")
                        elif isinstance(value, str) and FORMAT_REACH_RE.search(value):
                            self._code(f"str.{method}() reaching into attributes: {value!r}")
                if method in CONTENT_METHODS and self.content_kind(node.node.node) == "value":
                    for literal in (self.strings(node.args[0]) if node.args else []):
                        self._literal(literal)
                    if method == "replace" and len(node.args) > 1:
                        for literal in self.strings(node.args[1]):
                            self._literal(literal, rewrite=True)
            if isinstance(node, nodes.Filter) and node.name == "replace" and node.node is not None \
                    and self.content_kind(node.node) == "value":
                for literal in (self.strings(node.args[0]) if node.args else []):
                    self._literal(literal)
                for literal in (self.strings(node.args[1]) if len(node.args) > 1 else []):
                    self._literal(literal, rewrite=True)
            # constants and what they fold to: dunder names, and the text the model is told
            if isinstance(node, (nodes.Const, nodes.Concat, nodes.Add, nodes.Mul, nodes.Mod,
                                 nodes.Filter, nodes.Call, nodes.Getitem)):
                for value in self.fold(node):
                    if isinstance(value, str):
                        match = DUNDER_RE.search(value)
                        if match:
                            self._code(f"dunder name {match.group(0)!r} in a constant")
                        elif PRIVATE_NAME_RE.fullmatch(value):
                            self._code(f"private name {value!r} in a constant")
                        self.texts.append(value)
            elif isinstance(node, nodes.TemplateData):
                self.texts.append(node.data)
            elif isinstance(node, nodes.Output):
                self.texts.append(self._output_text(node))
        # all the text the template can output, in source order across its branches and loops:
        # a phrase or a URL split by `{% if %}` blocks is read whole
        self.texts.append("".join(self._output_text(n) for n in self._in_order(nodes.Output)))

    def _output_text(self, node: nodes.Output) -> str:
        folded = [self.fold(n) for n in node.nodes]
        return "".join(v[0] if len(v) == 1 and isinstance(v[0], str) else "\n" for v in folded)

    def _in_order(self, kind: type) -> list[Any]:
        out, stack = [], [self.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, kind):
                out.append(node)
            stack.extend(reversed(list(node.iter_child_nodes())))
        return out

    def _tests_content_attribute(self, node: nodes.Filter) -> bool:
        """|selectattr/|rejectattr comparing each item's `content` (or `text`) attribute."""
        attrs, tests = self.fold(node.args[0]), self.fold(node.args[1])
        return (any(isinstance(a, str) and a.split(".")[-1] in ("content", "text") for a in attrs)
                and any(isinstance(t, str) and t in COMPARE_TESTS for t in tests))

    def _compare(self, a: nodes.Node, b: nodes.Node) -> None:
        for content, other in ((a, b), (b, a)):
            if self.content_kind(content) == "value" and self.content_kind(other) is None:
                for literal in self.strings(other):
                    self._literal(literal)


# ---------------------------------------------------------------------------------- facts

@dataclass(frozen=True)
class _Facts:
    code: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    phrases: Counter = field(default_factory=Counter)
    phrase_quotes: dict[str, str] = field(default_factory=dict)
    content_literals: dict[str, str] = field(default_factory=dict)
    texts: tuple[str, ...] = ()          # distinct text pieces, in the template's order


@functools.lru_cache(maxsize=64)
def _facts(text: str) -> _Facts:
    """Raises TemplateSyntaxError, RecursionError (too deep) for templates that cannot be read.
    Cached by text: the quantizations of one model carry the same template, analysed once."""
    analysis = _Analysis(_parse(text))
    texts = list(dict.fromkeys(analysis.texts))
    urls: dict[str, None] = {}
    phrases: Counter = Counter()
    quotes: dict[str, str] = {}
    for piece in texts:
        for url in URL_RE.findall(piece):
            urls.setdefault(url.rstrip(".,;:)]"), None)
        for phrase, n in phrase_counts(piece).items():
            phrases[phrase] += n
            quotes.setdefault(phrase, _quote(piece, phrase))
    return _Facts(code=tuple(analysis.code), urls=tuple(urls), phrases=phrases, phrase_quotes=quotes,
                  content_literals=analysis.content_literals, texts=tuple(texts))


def _quote(piece: str, phrase: str) -> str:
    norm = normalise(piece)
    at = norm.find(phrase)
    start = max(0, at - 50)
    return ("…" if start else "") + norm[start:at + len(phrase) + 70]


def _merge(facts: Iterable[_Facts]) -> _Facts:
    code: dict[str, None] = {}
    urls: dict[str, None] = {}
    phrases: Counter = Counter()
    literals: dict[str, str] = {}
    texts: dict[str, None] = {}
    for f in facts:
        code.update(dict.fromkeys(f.code))
        urls.update(dict.fromkeys(f.urls))
        for phrase, n in f.phrases.items():
            phrases[phrase] = max(phrases[phrase], n)
        literals.update(f.content_literals)
        texts.update(dict.fromkeys(f.texts))
    return _Facts(code=tuple(code), urls=tuple(urls), phrases=phrases, content_literals=literals,
                  texts=tuple(texts))


def _added_hits(name: str, new: _Facts, old: _Facts) -> list[TemplateHit]:
    hits = [TemplateHit(CODE, "critical", name, d) for d in new.code if d not in old.code]
    old_text = "\n".join(old.texts)
    for url in new.urls:
        if url not in old.urls and url not in old_text:
            hits.append(TemplateHit(INJECTION, "high", name, visible(f"added URL {url}", 200)))
    old_pieces = set(old.texts)
    for phrase, n in new.phrases.items():
        if n > old.phrases.get(phrase, 0):
            added = [p for p in new.texts if p not in old_pieces and phrase in phrase_counts(p)]
            quote = _quote(min(added, key=len), phrase) if added else new.phrase_quotes.get(phrase, "")
            hits.append(TemplateHit(INJECTION, "high", name, visible(f"added text {phrase!r}: \"{quote}\"", 240)))
    for key, literal in new.content_literals.items():
        if key not in old.content_literals:
            what = (f"rewrites message content with {literal[len('rewrite:'):]!r}" if key.startswith("rewrite ")
                    else f"tests message content against {literal!r}")
            hits.append(TemplateHit(INJECTION, "high", name, visible(what, 200)))
    return hits


# ---------------------------------------------------------------------------------- diff

_SPLIT_RE = re.compile(r"(?=\{[%{#])")


def _lines(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        if len(line) > MAX_DIFF_LINE:
            out.extend(p for p in _SPLIT_RE.split(line) if p)
        else:
            out.append(line)
    return out


def _name_diff(name: str, a: str | None, b: str | None) -> list[str]:
    """The unified diff of one template (one line of context), computed once per changed name."""
    return list(difflib.unified_diff(_lines(a or ""), _lines(b or ""),
                                     f"a/{name}" if a is not None else "/dev/null",
                                     f"b/{name}" if b is not None else "/dev/null", n=1, lineterm=""))


def _diff(per_name: Sequence[list[str]]) -> str:
    out = [visible(line, MAX_DIFF_LINE) for lines in per_name for line in lines]
    text, kept = "", 0
    for line in out:
        if len(text) + len(line) + 1 > MAX_DIFF_CHARS:
            return text + f"… diff truncated ({len(out) - kept} more lines)"
        text += line + "\n"
        kept += 1
    return text


def _change_detail(a: str | None, b: str | None, lines: Sequence[str]) -> str:
    if a is None:
        return f"template added ({len(b or ''):,} characters)"
    if b is None:
        return "template removed"
    plus = minus = 0
    for line in lines:  # context lines do not count: the same +/- lines whatever the context size
        if line.startswith("+") and not line.startswith("+++"):
            plus += 1
        elif line.startswith("-") and not line.startswith("---"):
            minus += 1
    return f"+{plus} -{minus} lines"


# ---------------------------------------------------------------------------------- compare

def _analyse_all(templates: Mapping[str, str]) -> tuple[dict[str, _Facts], dict[str, str]]:
    facts, failed = {}, {}
    for name, text in templates.items():
        if len(text) > MAX_TEMPLATE_CHARS:
            failed[name] = f"{len(text):,} characters, more than {MAX_TEMPLATE_CHARS:,}"
            continue
        try:
            facts[name] = _facts(text)
        except TemplateSyntaxError as exc:
            failed[name] = f"does not parse: {visible(exc.message or 'syntax error', 120)} (line {exc.lineno})"
        except RecursionError:
            failed[name] = "nested too deeply to analyse"
        except Exception as exc:   # fail closed: whatever the parser or the walk met is reported
            failed[name] = f"could not be analysed ({type(exc).__name__}: {visible(str(exc), 100)})"
    return facts, failed


def compare_templates(old: Mapping[str, str] | None, new: Mapping[str, str]) -> TemplateVerdict:
    """old None: baseline audit of `new` alone. Otherwise chat_template_changed for any change, and
    the code and injection rules on what the new side added (absent from every old template)."""
    hits: list[TemplateHit] = []
    diff = ""
    if old is not None:
        if dict(old) == dict(new):
            return TemplateVerdict(hits=(), diff="", not_inspected=None)
        per_name = []
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                lines = _name_diff(name, old.get(name), new.get(name))
                per_name.append(lines)
                hits.append(TemplateHit(CHANGED, "medium", name, _change_detail(old.get(name), new.get(name), lines)))
        diff = _diff(per_name)
        changed = {name: text for name, text in new.items() if old.get(name) != text}
        old_facts = _merge(_analyse_all(old)[0].values())
    else:
        changed = dict(new)
        old_facts = _Facts()
    new_facts, failed = _analyse_all(changed)
    for name in sorted(new_facts):
        hits.extend(_added_hits(name, new_facts[name], old_facts))
    reason = "; ".join(f"template {visible(n, 60)!r} {why}" for n, why in sorted(failed.items())) or None
    hits.sort(key=lambda h: -SEVERITY_RANK[h.severity])
    return TemplateVerdict(hits=tuple(hits[:MAX_HITS]), diff=diff, not_inspected=reason)


def analyse_template(text: str, name: str = "default") -> TemplateVerdict:
    """One template alone (a baseline): the code and injection rules on all of it."""
    return compare_templates(None, {name: text})
