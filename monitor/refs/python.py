"""Hub references in Python source, read from the AST (never a regex over the text).

A reference is a call we know loads a Hub repo (`*.from_pretrained`, `hf_hub_download`,
`snapshot_download`, `hf_hub_url`, `pipeline`, `load_dataset`, `load_dataset_builder`) whose repo
argument is a string we can read: a literal, a constant f-string, or a module-level constant
(`MODEL = "org/model"` bound once). Anything else (a parameter, a computed f-string) is reported
as `Unresolved`, never guessed. Comments, docstrings and strings outside such calls are not
references because the AST never shows them as call arguments.
"""

from __future__ import annotations

import ast
import warnings
from bisect import bisect_left
from dataclasses import dataclass
from typing import Iterable

from monitor.refs.model import REPO_TYPES, Parsed, Problem, Reference, Unresolved, is_hub_id


@dataclass(frozen=True)
class _Spec:
    type: str                   # default repo type
    repo_kw: tuple[str, ...]    # keyword names of the repo argument
    repo_pos: int               # its position
    method_only: bool = False   # only `X.name(...)` counts (a bare `from_pretrained()` is someone else's)


CALLS = {
    "from_pretrained": _Spec("model", ("pretrained_model_name_or_path", "model_id"), 0, True),
    "hf_hub_download": _Spec("model", ("repo_id",), 0),
    "snapshot_download": _Spec("model", ("repo_id",), 0),
    "hf_hub_url": _Spec("model", ("repo_id",), 0),
    "pipeline": _Spec("model", ("model",), 1),
    "load_dataset": _Spec("dataset", ("path",), 0),
    "load_dataset_builder": _Spec("dataset", ("path",), 0),
}
# The bytes a file must contain to be worth parsing (a cheap filter, the AST decides).
TRIGGERS = tuple(name.encode() for name in CALLS)

# `load_dataset("csv", data_files=...)` loads local files through a packaged builder, not the Hub.
PACKAGED_BUILDERS = frozenset({
    "arrow", "audiofolder", "cache", "csv", "generator", "hdf5", "imagefolder", "json", "niftifolder",
    "pandas", "parquet", "pdffolder", "spark", "sql", "text", "videofolder", "webdataset", "xml"})
_FILE_SUFFIXES = (".py", ".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".arrow", ".zip",
                  ".gz", ".tar", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".onnx")
_REPO_TYPE_CONSTANTS = {"REPO_TYPE_MODEL": "model", "REPO_TYPE_DATASET": "dataset", "REPO_TYPE_SPACE": "space"}


def parse(source: bytes | str, file: str) -> Parsed:
    """Every reference in one Python file; a file that does not parse is a `Problem`, not a crash."""
    tree = parse_tree(source, file)
    if isinstance(tree, Problem):
        return Parsed(problems=(tree,))
    refs, unresolved = references(tree, file, module_constants([tree]), source=source,
                                  aliases=import_aliases([tree]))
    return Parsed(tuple(refs), tuple(unresolved))


def parse_tree(source: bytes | str, file: str, where: str = "") -> ast.Module | Problem:
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" in someone's code is not our news
            warnings.simplefilter("ignore")
            return ast.parse(source, filename=file)
    except SyntaxError as e:
        return Problem(file, f"{where}not valid Python (line {e.lineno}: {e.msg})")
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        return Problem(file, f"{where}not parsed ({type(e).__name__}: {str(e)[:80]})")


def module_constants(trees: Iterable[ast.Module]) -> dict[str, str]:
    """Names bound exactly once at module level, to a string: the only variables we resolve."""
    values: dict[str, str | None] = {}
    for tree in trees:
        for stmt in tree.body:
            for target, value in _assignments(stmt):
                text = _literal(value) if value is not None else None
                values[target] = text if target not in values else None
    return {k: v for k, v in values.items() if v is not None}


def import_aliases(trees: Iterable[ast.Module]) -> dict[str, str]:
    """What each `import … as NAME` stands for: `from transformers import pipeline as p` makes `p`
    mean `pipeline`, `from peft import PeftModel as PM` makes `PM` mean `PeftModel`. Only
    statements are walked (imports are statements), so the cost stays far below a full walk."""
    out: dict[str, str | None] = {}
    for tree in trees:
        stack: list[ast.AST] = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    if a.asname and a.asname != a.name:
                        # `import a.b as c` binds c to a.b; a name aliased twice to different things is unknown
                        out[a.asname] = a.name if out.get(a.asname, a.name) == a.name else None
                continue
            stack.extend(child for child in ast.iter_child_nodes(node)
                         if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)))
    return {k: v for k, v in out.items() if v is not None}


def _assignments(stmt: ast.stmt) -> Iterable[tuple[str, ast.expr | None]]:
    if isinstance(stmt, ast.Assign):
        for t in stmt.targets:
            yield from ((n, stmt.value if isinstance(t, ast.Name) else None) for n in _names(t))
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and isinstance(stmt.target, ast.Name):
        yield stmt.target.id, getattr(stmt, "value", None) if isinstance(stmt, ast.AnnAssign) else None
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield stmt.name, None  # what a body assigns is local to it
    elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield from ((a.asname or a.name.split(".")[0], None) for a in stmt.names)
    elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.If, ast.Try, ast.While)):
        # Bound in a block: maybe, maybe not, maybe twice: not a constant, so it poisons the name.
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                yield node.id, None
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield node.name, None


def _names(target: ast.expr) -> Iterable[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
        return "".join(str(v.value) for v in node.values)  # an f-string without placeholders
    return None


def references(tree: ast.Module, file: str, constants: dict[str, str], cell: int | None = None,
               source: bytes | str | None = None, aliases: dict[str, str] | None = None,
               ) -> tuple[list[Reference], list[Unresolved]]:
    """The loader calls in `tree`, also through import aliases (`aliases`, see `import_aliases`).
    With `source`, only the statements spanning a line that mentions a loader name (or an alias
    of one) are visited: the AST decides, the text only says where to look."""
    aliases = aliases or {}
    words = TRIGGERS + tuple(a.encode() for a, name in aliases.items() if name.rsplit(".", 1)[-1] in CALLS)
    finder = _Finder(file, constants, cell, trigger_lines(source, words) if source is not None else None, aliases)
    finder.visit(tree)
    return finder.refs, finder.unresolved


def trigger_lines(source: bytes | str, words: tuple[bytes, ...] = TRIGGERS) -> list[int]:
    """Sorted 1-based numbers of the lines holding a loader's name (or one of `words`)."""
    raw = source.encode("utf-8", errors="replace") if isinstance(source, str) else source
    lines = set()
    for word in words:
        line, last = 1, 0  # counted on from the previous match: one pass per word, not per match
        pos = raw.find(word)
        while pos != -1:
            line += raw.count(b"\n", last, pos)
            last = pos
            lines.add(line)
            pos = raw.find(word, pos + len(word))
    return sorted(lines)


class _Finder:
    def __init__(self, file: str, constants: dict[str, str], cell: int | None, lines: list[int] | None,
                 aliases: dict[str, str]):
        self.file, self.constants, self.cell, self.lines, self.aliases = file, constants, cell, lines, aliases
        self.refs: list[Reference] = []
        self.unresolved: list[Unresolved] = []
        self._scopes: list[ast.AST] = []
        self._bound: dict[int, frozenset[str]] = {}

    def _relevant(self, node: ast.AST) -> bool:
        lo = getattr(node, "lineno", None)
        if self.lines is None or lo is None:
            return True
        i = bisect_left(self.lines, lo)
        return i < len(self.lines) and self.lines[i] <= (getattr(node, "end_lineno", None) or lo)

    def visit(self, node: ast.AST) -> None:
        # An explicit stack, not recursion: deeply nested code must not overflow ours.
        stack: list[tuple[ast.AST, int]] = [(node, len(self._scopes))]
        while stack:
            node, depth = stack.pop()
            del self._scopes[depth:]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                self._scopes.append(node)
            elif isinstance(node, ast.Call):
                self.visit_Call(node)
            level = len(self._scopes)
            stack.extend((child, level) for child in reversed(list(ast.iter_child_nodes(node)))
                         if self._relevant(child))

    def _local(self, name: str) -> bool:
        """Bound inside an enclosing function (a parameter, an assignment): it shadows the constant."""
        for fn in self._scopes:
            bound = self._bound.get(id(fn))
            if bound is None:
                bound = frozenset(a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)) | frozenset(
                    n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
                self._bound[id(fn)] = bound
            if name in bound:
                return True
        return False

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.aliases and self._local(func.id):
            return  # `def f(p): p(...)`: a parameter or local named like an import alias is not the import
        name = (func.attr if isinstance(func, ast.Attribute) else
                self.aliases.get(func.id, func.id).rsplit(".", 1)[-1] if isinstance(func, ast.Name) else None)
        spec = CALLS.get(name) if name else None
        if spec is None or (spec.method_only and not isinstance(func, ast.Attribute)):
            return
        pos = spec.repo_pos
        owner = _dotted(func.value, self.aliases).rsplit(".", 1)[-1] if name == "from_pretrained" else ""
        if owner.lower().startswith("peft"):
            # PeftModel.from_pretrained(base_model, "org/adapter"), but AutoPeftModel*.from_pretrained("org/adapter")
            pos = 1
        arg = _argument(node, spec.repo_kw, pos)
        if arg is None:
            return
        repo, why = self._value(arg)
        if repo is None:
            self.unresolved.append(Unresolved(self.file, arg.lineno, name, why, self.cell))
            return
        if not _is_hub_repo(repo, spec.type):
            return
        rtype = self._repo_type(node, spec.type)
        revision = None
        rev_arg = _argument(node, ("revision",), None)
        if rev_arg is not None and not (isinstance(rev_arg, ast.Constant) and rev_arg.value is None):
            revision, why = self._value(rev_arg)
            if revision is None:
                self.unresolved.append(Unresolved(self.file, rev_arg.lineno, f"{name} revision", why, self.cell))
        self.refs.append(Reference(repo, rtype, self.file, arg.lineno, revision, name, self.cell))

    def _value(self, node: ast.expr) -> tuple[str | None, str]:
        text = _literal(node)
        if text is not None:
            return text, ""
        if isinstance(node, ast.Name):
            if node.id in self.constants and not self._local(node.id):
                return self.constants[node.id], ""
            return None, f"variable {node.id}"
        if isinstance(node, ast.JoinedStr):
            return None, "f-string"
        return None, type(node).__name__.lower()

    def _repo_type(self, call: ast.Call, default: str) -> str:
        arg = _argument(call, ("repo_type",), None)
        if arg is None:
            return default
        if isinstance(arg, ast.Attribute) and arg.attr in _REPO_TYPE_CONSTANTS:
            return _REPO_TYPE_CONSTANTS[arg.attr]
        value, _ = self._value(arg)
        return value if value in REPO_TYPES else default


def _argument(call: ast.Call, keywords: tuple[str, ...], position: int | None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg in keywords:
            return kw.value
    if position is not None and len(call.args) > position and not any(
            isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return call.args[position]
    return None


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    """`a.b.C` as written, its first name read through the import aliases (`PM` -> `PeftModel`)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_hub_repo(text: str, rtype: str) -> bool:
    if not is_hub_id(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    return not (rtype == "dataset" and text.lower() in PACKAGED_BUILDERS)
