"""Hub references in Python source, read from the AST (never a regex over the text), as a reader would.

A reference is a call of the loader registry (loaders.py) whose repo argument we can read. The
statements of a module (a notebook's cells in order, as a kernel runs them) are walked in
straight-line order with an environment of the string values each name holds:

- `MODEL = "org/m"` binds a constant; re-binding the same literal keeps it; a different literal
  replaces it for the loads that follow (a re-run notebook cell, a script that switches models);
- tuple/list unpacking (`model_id, out = "org/m", "out"`), f-strings and `+` of constants,
  `os.environ.get("X", "org/m")` / `os.getenv` (`source: default`), parameters with a string
  default (`def f(model="org/m")`, `source: default`);
- a name bound differently in the branches of an `if`, a loop or a `try` holds every candidate:
  each load reports each one (`candidates` > 1);
- function bodies see their own bindings, then the module's (as they are at the end of it).

What cannot be read (a parameter, an attribute, a call's result) is `Unresolved` with the reason,
never guessed. argparse `add_argument("--model_name_or_path", default="org/m")` and dataclass
`field(default="org/m")` of a model or dataset option are references at the default's line
(`source: default`): that is what the script loads when run without arguments. `hf://` and
`https://huggingface.co/.../resolve/REV/...` URLs given to any call are references with their
revision. A name the same code saves to (`save_pretrained`, `push_to_hub`, `output_dir=`) is local.
"""

from __future__ import annotations

import ast
import re
import unicodedata
import warnings
from bisect import bisect_left
from dataclasses import dataclass, replace
from typing import Iterator
from urllib.parse import unquote

from monitor.refs import legacy, loaders
from monitor.refs.model import REPO_TYPES, SHA, Parsed, Problem, Reference, Unresolved, is_hub_id

TRIGGERS = loaders.TRIGGERS + (b"add_argument(", b"field(")
LINE_TRIGGERS = loaders.LINE_TRIGGERS + (b"add_argument(", b"field(")

# `load_dataset("csv", data_files=...)` loads local files through a packaged builder, not the Hub.
PACKAGED_BUILDERS = frozenset({
    "arrow", "audiofolder", "cache", "csv", "generator", "hdf5", "imagefolder", "json", "niftifolder",
    "pandas", "parquet", "pdffolder", "spark", "sql", "text", "videofolder", "webdataset", "xml"})
_FILE_SUFFIXES = (".py", ".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".arrow", ".zip",
                  ".gz", ".tar", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".gguf")
_REPO_TYPE_CONSTANTS = {"REPO_TYPE_MODEL": "model", "REPO_TYPE_DATASET": "dataset", "REPO_TYPE_SPACE": "space"}
MAX_CANDIDATES = 8
# Calls that save to a name: that name is then local, not a Hub repo, when the same code loads it.
_SAVE_CALLS = {"save_pretrained": ("save_directory",), "save_model": ("output_dir",),
               "push_to_hub": ("repo_id",), "save_to_disk": ("dataset_path",)}
_SAVE_KWS = frozenset({"output_dir", "hub_model_id", "push_to_hub_model_id", "save_directory"})
_SAVE_WORDS = tuple(n.encode() + b"(" for n in _SAVE_CALLS) + (b"output_dir=", b"hub_model_id=")
# argparse options / dataclass fields whose string default names what the script loads.
_OPTION = re.compile(r"(name_or_path|model_id|model_name|model_path|dataset_name|dataset_id|dataset_path|data_path|"
                     r"tokenizer_name|checkpoint|(^|_)(model|dataset|tokenizer|adapter|teacher_model|ref_model|"
                     r"reward_model))$", re.I)  # not model_type, model_dtype, tokenizer_class ...
_NOT_A_LOAD = re.compile(r"(output|save|hub_model_id|push|cache|logging|log_dir|_dir$|report|wandb|run_name)", re.I)
_IGNORE = re.compile(r"#\s*hubwatch:\s*ignore(?:\[([a-z, -]*)\])?")
_HF_URL = re.compile(r"hf://(?:(datasets|spaces|models)/)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([^/\s]+))?")
_WEB_URL = re.compile(r"https?://(?:huggingface\.co|hf\.co)/(?:(datasets|spaces)/)?([A-Za-z0-9][\w.-]*/[\w.-]+)"
                      r"/(?:resolve|blob|raw|tree)/([^/\s?#]+)")
_URL_TYPES = {None: "model", "models": "model", "datasets": "dataset", "spaces": "space"}


@dataclass(frozen=True)
class Val:
    """What a name or an expression holds: candidate strings, or why we cannot tell."""

    values: tuple[str, ...] = ()
    why: str = ""              # non-empty: not resolved (and why)
    source: str | None = None  # "default": an environment or parameter default
    notstr: bool = False       # certainly not a string (a model object, a number)


_NONE = Val(notstr=True, why="not a string")
_DEF = Val(notstr=True, why="a def or class")  # a local function named like a loader may wrap it: still matched
# never hold a call: definitions are walked as their own scope, the rest are markers
_SKIP_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.expr_context, ast.operator, ast.unaryop,
               ast.cmpop, ast.boolop)
_IMPORT = Val(notstr=True, why="an import")
_UNBOUND = Val(why="not bound on every path")


class Env:
    """A scope's bindings over its parent's: a branch, a function or a class body costs no copy."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: "Env | None" = None):
        self.vars: dict[str, Val] = {}
        self.parent = parent

    def get(self, name: str) -> Val | None:
        env = self
        while env is not None:
            value = env.vars.get(name)
            if value is not None:
                return value
            env = env.parent
        return None

    def __setitem__(self, name: str, value: Val) -> None:
        self.vars[name] = value


CHUNKED_FROM = 256_000  # bytes: a bigger file is parsed a run of top-level statements at a time
CHUNK_LINES = 2000


def parse(source: bytes | str, file: str) -> Parsed:
    """Every reference in one Python file; a file that does not parse is a `Problem`, not a crash.
    A big file is parsed in runs of whole top-level statements, each walked and dropped in turn:
    the syntax tree of 100,000 calls at once would take half a gigabyte."""
    if len(source) > CHUNKED_FROM:
        return _parse_chunked(source, file)
    tree, problem = parse_readable(source, file)
    if tree is None:
        return Parsed(problems=(problem,))
    scanner = Scanner(file)
    scanner.module(tree, source)
    found = scanner.finish()
    return Parsed(found.references, found.unresolved, (problem,) if problem else ())


_CONTINUES = ("else", "elif", "except", "finally")
_NEWLINE = re.compile(r"\r\n?|\n")  # the line ends Python's tokenizer counts


def _parse_chunked(source: bytes | str, file: str) -> Parsed:
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    if "\x00" in text:  # NUL bytes: the parser refuses the file whole
        return Parsed(problems=(Problem(file, "not parsed (ValueError: source code cannot contain null bytes)"),))
    lines = _NEWLINE.split(text.removeprefix("\ufeff"))
    scanner = Scanner(file)
    ctx = scanner.context(source)
    start, size = 0, CHUNK_LINES
    while start < len(lines):
        end = _boundary(lines, start + size)
        tree = parse_tree("\n" * start + "\n".join(lines[start:end]), file)  # newlines keep line numbers true
        if isinstance(tree, Problem):
            if end >= len(lines):
                return Parsed(problems=(tree,))
            size *= 2  # cut inside a string or a bracket: take more (doubling keeps the total linear)
            continue
        scanner.walk(tree, ctx)
        del tree
        start, size = end, CHUNK_LINES
    return scanner.finish()


def _boundary(lines: list[str], at: int) -> int:
    """The first line from `at` on that may begin a top-level statement (column 0, a name)."""
    for i in range(at, len(lines)):
        line = lines[i]
        if line[:1].isalpha() or line[:1] == "_":
            word = line.split(None, 1)[0].rstrip(":")
            if word not in _CONTINUES:
                return i
    return len(lines)


def parse_tree(source: bytes | str, file: str, where: str = "") -> ast.Module | Problem:
    return _parse(source, file, where)[0]


def _parse(source: bytes | str, file: str, where: str) -> tuple[ast.Module | Problem, int | None]:
    """(the tree or the Problem, the line of a syntax error)."""
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" in someone's code is not our news
            warnings.simplefilter("ignore")
            return ast.parse(source, filename=file), None
    except SyntaxError as e:
        return Problem(file, f"{where}not valid Python (line {e.lineno}: {e.msg})"), e.lineno
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        return Problem(file, f"{where}not parsed ({type(e).__name__}: {str(e)[:80]})"), None


MAX_PREFIX_TRIES = 8


def parse_readable(source: bytes | str, file: str, where: str = "") -> tuple[ast.Module | None, Problem | None]:
    """(tree, None) for valid Python. Otherwise the Problem, with the tree of the whole top-level
    statements before the error when there are some (`Trainer(model=model, ...)` pseudo-code in
    the middle of a docs notebook cell must not hide the real loads above it): what could be read
    is reported, and the rest is still an uninspected entry."""
    tree, bad = _parse(source, file, where)  # bad: the syntax error's line (None: nothing partial to read)
    if not isinstance(tree, Problem):
        return tree, None
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    lines = _NEWLINE.split(text)
    if not bad or bad < 2:
        return None, tree
    cut, tries = min(bad - 1, len(lines) - 1), 0
    while cut > 0 and tries < MAX_PREFIX_TRIES:
        while cut > 0 and not (lines[cut][:1].isalpha() or lines[cut][:1] in ("_", "@", "#", "")):
            cut -= 1
        if cut <= 0:
            break
        prefix = parse_tree("\n".join(lines[:cut]), file)
        if not isinstance(prefix, Problem):
            return prefix, Problem(file, f"{tree.message} (read up to line {cut})")
        cut, tries = cut - 1, tries + 1
    return None, tree


def _imported(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(name, what it stands for): `from transformers import pipeline as p` -> (p,
    transformers.pipeline), `import evaluate` -> (evaluate, evaluate). Imports are recorded as the
    walk meets them (a name imported twice as different things becomes unknown: "")."""
    base = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
    for a in node.names:
        if isinstance(node, ast.ImportFrom):
            yield a.asname or a.name, f"{base}.{a.name}" if base else a.name
        elif a.asname:
            yield a.asname, a.name
        else:
            yield a.name.split(".")[0], a.name.split(".")[0]


_AS = re.compile(rb"\bas\s+([A-Za-z_]\w*)")


def trigger_lines(source: bytes | str, words: tuple[bytes, ...] = LINE_TRIGGERS,
                  pattern: re.Pattern[bytes] | None = loaders.LINE_PATTERN) -> list[int]:
    """Sorted 1-based numbers of the lines holding a loader's call (`pattern`: its name, then "("
    after any blanks) or one of `words`."""
    raw = source.encode("utf-8", errors="replace") if isinstance(source, str) else source
    if b"\r" in raw:  # Python ends a line at \r\n, \n and a lone \r: count them as its tokenizer does
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not raw.isascii():  # identifiers are read NFKC-folded (`ｆrom_pretrained` is `from_pretrained`)
        raw = unicodedata.normalize("NFKC", raw.decode("utf-8", errors="replace")).encode("utf-8", errors="replace")
    lines = set()
    if pattern is not None:
        line, last = 1, 0
        for m in pattern.finditer(raw):
            line += raw.count(b"\n", last, m.start())
            last = m.start()
            lines.add(line)
    for word in words:
        line, last = 1, 0  # counted on from the previous match: one pass per word, not per match
        pos = raw.find(word)
        while pos != -1:
            line += raw.count(b"\n", last, pos)
            last = pos
            lines.add(line)
            pos = raw.find(word, pos + len(word))
    return sorted(lines)


def ignores(source: bytes | str) -> dict[int, frozenset[str]]:
    """line -> the conditions `# hubwatch: ignore[a,b]` waives there (a bare `ignore`: all, "*")."""
    text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
    if "hubwatch:" not in text:
        return {}
    out = {}
    for number, line in enumerate(_NEWLINE.split(text), 1):
        m = _IGNORE.search(line) if "hubwatch:" in line else None
        if m:
            out[number] = frozenset(c.strip() for c in m.group(1).split(",") if c.strip()) if m.group(1) else frozenset("*")
    return out


@dataclass
class _Ctx:
    """Where a tree comes from: its cell, the lines worth visiting, the inline suppressions."""

    cell: int | None
    lines: list[int] | None
    ignored: dict[int, frozenset[str]]
    file_line: int | None = None   # notebooks: the .ipynb line of the cell's first source line
    per_line: bool = True          # notebooks: each source line is one JSON line
    urls: frozenset[int] | None = None  # the lines holding an hf:// or huggingface.co URL (None: any)


class Scanner:
    """Walks one file's modules (a notebook's cells, in order) and collects what they load."""

    def __init__(self, file: str):
        self.file = file
        self.imported: dict[str, str] = {}  # name -> what it was imported as ("" = conflicting imports)
        self._aliases: dict[bytes, None] = {}
        self.env = Env()
        self.refs: list[Reference] = []      # before filtering out what the code saves to
        self.unresolved: list[Unresolved] = []
        self.saved: set[str] = set()                     # names the code saves to
        self.saved_exprs: set[str] = set()               # expressions it saves to (`args.output_dir`)
        self._unresolved_exprs: list[str | None] = []    # the argument of each unresolved entry
        self._functions: list[tuple[ast.AST, _Ctx, Env | None]] = []

    # -- driving -------------------------------------------------------------------------------
    def module(self, tree: ast.Module, source: bytes | str | None, cell: int | None = None,
               file_line: int | None = None, per_line: bool = True) -> None:
        self.walk(tree, self.context(source, cell, file_line, per_line))

    def walk(self, tree: ast.Module, ctx: "_Ctx") -> None:
        self._block(tree.body, self.env, ctx)

    def context(self, source: bytes | str | None, cell: int | None = None, file_line: int | None = None,
                per_line: bool = True) -> "_Ctx":
        raw = source.encode("utf-8", errors="replace") if isinstance(source, str) else (source or b"")
        # `import ... as NAME`: calls through NAME are on lines the loader names are not
        self._aliases.update(dict.fromkeys(m.group(1) for m in _AS.finditer(raw)))  # a notebook's serve later cells
        words = LINE_TRIGGERS + tuple(self._aliases)
        ctx = _Ctx(cell, trigger_lines(source, words + _SAVE_WORDS)
                   if source is not None else None, ignores(source) if source is not None else {}, file_line, per_line,
                   frozenset(trigger_lines(raw, tuple(loaders.URL_WORDS), None)) if source is not None else None)
        return ctx

    def finish(self) -> Parsed:
        while self._functions:  # bodies run after the module, seeing its final bindings
            node, ctx, parent = self._functions.pop(0)
            self._function(node, ctx, parent)
        refs = []
        for ref in self.refs:
            if ref.repo in self.saved:
                continue  # the code saves to this name: a local directory
            refs.append(ref)
        # a load of what the same code saves to (`save_pretrained(args.output_dir)`, then
        # `load_lora_weights(args.output_dir)`) reads back its own output: local, not unresolved
        unresolved = tuple(u for u, e in zip(self.unresolved, self._unresolved_exprs) if e not in self.saved_exprs)
        return Parsed(tuple(refs), unresolved)

    # -- statements ----------------------------------------------------------------------------
    def _block(self, body: list[ast.stmt], env: Env, ctx: _Ctx) -> None:
        for stmt in body:
            self._stmt(stmt, env, ctx)

    def _stmt(self, stmt: ast.stmt, env: Env, ctx: _Ctx) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in stmt.decorator_list + [a for a in stmt.args.defaults + stmt.args.kw_defaults if a is not None]:
                self._calls(d, env, ctx)
            env[stmt.name] = _DEF
            if self._relevant(stmt, ctx):  # no loader line in it: its local names cannot matter
                self._functions.append((stmt, ctx, env if env is not self.env else None))
            return
        if isinstance(stmt, ast.ClassDef):
            for d in stmt.decorator_list + stmt.bases + [k.value for k in stmt.keywords]:
                self._calls(d, env, ctx)
            env[stmt.name] = _NONE
            if not self._relevant(stmt, ctx):
                return
            scope, before = Env(env), len(self._functions)
            self._block(stmt.body, scope, ctx)  # class attributes do not leak into the module
            # methods do not see the class body's names: they see the enclosing scope
            self._functions[before:] = [(n, c, None if env is self.env else env) if p is scope else (n, c, p)
                                        for n, c, p in self._functions[before:]]
            self._dataclass_fields(stmt, ctx)
            env[stmt.name] = _NONE
            return
        if isinstance(stmt, ast.If):
            self._calls(stmt.test, env, ctx)
            self._branches(env, ctx, [stmt.body, stmt.orelse])
            return
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            self._calls(stmt.iter, env, ctx)
            for name in _targets(stmt.target):
                env[name] = Val(why=f"loop variable {name}")
            self._branches(env, ctx, [stmt.body + stmt.orelse, []])
            return
        if isinstance(stmt, ast.While):
            self._calls(stmt.test, env, ctx)
            self._branches(env, ctx, [stmt.body + stmt.orelse, []])
            return
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self._calls(item.context_expr, env, ctx)
                if item.optional_vars is not None:
                    for name in _targets(item.optional_vars):
                        env[name] = Val(why=f"variable {name}")
            self._block(stmt.body, env, ctx)
            return
        if isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            self._branches(env, ctx, [stmt.body + stmt.orelse] + [h.body for h in stmt.handlers])
            self._block(stmt.finalbody, env, ctx)
            return
        if isinstance(stmt, ast.Match):
            self._calls(stmt.subject, env, ctx)
            self._branches(env, ctx, [c.body for c in stmt.cases] + [[]])
            return
        self._calls(stmt, env, ctx)
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self._bind(target, stmt.value, env)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self._bind(stmt.target, stmt.value, env)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            env[stmt.target.id] = Val(why=f"variable {stmt.target.id} (changed in place)")
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name, origin in _imported(stmt):
                env[name] = _IMPORT
                self.imported[name] = origin if self.imported.get(name, origin) == origin else ""
        elif isinstance(stmt, (ast.Global, ast.Nonlocal)):
            for name in stmt.names:
                env[name] = Val(why=f"variable {name} (global or nonlocal)")

    def _branches(self, env: Env, ctx: _Ctx, bodies: list[list[ast.stmt]]) -> None:
        """Each body runs on its own copy; afterwards a name holds what any of them left it."""
        outs = []
        for body in bodies:
            scope = Env(env)
            self._block(body, scope, ctx)
            outs.append(scope)
        changed = {k for o in outs for k in o.vars}  # only what a body bound
        for name in changed:
            env[name] = _merge([o.get(name) or _UNBOUND for o in outs])

    def _function(self, node: ast.AST, ctx: _Ctx, parent: Env | None) -> None:
        env = Env(self.env if parent is None else parent)
        args = node.args
        positional = args.posonlyargs + args.args
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        for a, d in list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults)):
            value = self._eval(d, env) if d is not None else None
            env[a.arg] = (replace(value, source="default") if value is not None and value.values
                          else Val(why=f"parameter {a.arg}"))
        for a in (args.vararg, args.kwarg):
            if a is not None:
                env[a.arg] = Val(why=f"parameter {a.arg}")
        before = len(self._functions)
        self._block(node.body, env, ctx)
        # nested functions see this body's final bindings
        self._functions[before:] = [(n, c, env if p is None or p is env else p) for n, c, p in self._functions[before:]]

    def _bind(self, target: ast.expr, value: ast.expr, env: Env) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = self._eval(value, env)
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = value.elts if isinstance(value, (ast.Tuple, ast.List)) else None
            if elts is not None and len(elts) == len(target.elts) and not any(isinstance(e, ast.Starred) for e in target.elts):
                values = [self._eval(e, env) for e in elts]  # right side first, then bind (a, b = b, a)
                for t, v in zip(target.elts, values):
                    if isinstance(t, ast.Name):
                        env[t.id] = v
                    else:
                        for name in _targets(t):
                            env[name] = Val(why=f"variable {name}")
            else:
                for name in _targets(target):
                    env[name] = Val(why=f"variable {name} (unpacked)")
        elif isinstance(target, ast.Starred):
            for name in _targets(target):
                env[name] = _NONE

    # -- expressions ---------------------------------------------------------------------------
    def _eval(self, node: ast.expr | None, env: Env) -> Val:
        if node is None:
            return _NONE
        if isinstance(node, ast.Constant):
            return Val((node.value,)) if isinstance(node.value, str) else _NONE
        if isinstance(node, ast.Name):
            value = env.get(node.id)
            if value is None:
                value = self.env.get(node.id)
            return value if value is not None else Val(why=f"variable {node.id}")
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(Val((str(v.value),)))
                elif isinstance(v, ast.FormattedValue) and v.format_spec is None:
                    parts.append(self._eval(v.value, env))
                else:
                    return Val(why="f-string")
            return _concat(parts, "f-string")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return _concat([self._eval(node.left, env), self._eval(node.right, env)], "expression")
        if isinstance(node, ast.IfExp):
            return _merge([self._eval(node.body, env), self._eval(node.orelse, env)])
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func, self.imported)
            if dotted in ("os.environ.get", "os.getenv", "environ.get", "getenv") and len(node.args) >= 2:
                default = self._eval(node.args[1], env)
                return replace(default, source="default") if default.values else Val(why="environment variable")
            if dotted in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                return Val(why="environment variable")
            name = dotted.rsplit(".", 1)[-1]
            if name[:1].isupper() or name in loaders.BY_NAME or name.endswith("from_pretrained"):
                return _NONE  # an object (a model, a config), not a name
            return Val(why=f"result of {name[:40]}()")
        if isinstance(node, ast.Attribute):
            return Val(why=f"attribute {_dotted(node, {})[:60]}")
        if isinstance(node, ast.Subscript):
            return Val(why="subscript")
        if isinstance(node, (ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Lambda, ast.ListComp, ast.DictComp,
                             ast.SetComp, ast.GeneratorExp, ast.Compare, ast.BoolOp, ast.UnaryOp)):
            return _NONE
        return Val(why=type(node).__name__.lower())

    # -- calls ---------------------------------------------------------------------------------
    def _relevant(self, node: ast.AST, ctx: _Ctx) -> bool:
        """Does `node` span a line holding a trigger word (a loader's name, an alias, a save call)?"""
        lo = getattr(node, "lineno", None)
        if ctx.lines is None or lo is None:
            return True
        i = bisect_left(ctx.lines, lo)
        return i < len(ctx.lines) and ctx.lines[i] <= (getattr(node, "end_lineno", None) or lo)

    def _calls(self, node: ast.AST, env: Env, ctx: _Ctx) -> None:
        """Every call in `node` (not inside a nested def/class: those are walked as their own scope)."""
        if not self._relevant(node, ctx):
            return
        # a statement on one line that holds a trigger: every part of it does, no more line checks
        single = getattr(node, "lineno", None) is not None and node.lineno == getattr(node, "end_lineno", None)
        stack = [(node, env)]
        while stack:
            n, scope = stack.pop()
            if isinstance(n, ast.Call):
                self._call(n, scope, ctx)
            if isinstance(n, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                bound = set(_lambda_args(n)) if isinstance(n, ast.Lambda) else {
                    t for g in n.generators for t in _targets(g.target)}
                scope = Env(scope)
                for b in bound:
                    scope[b] = Val(why=f"variable {b}")
            for child in ast.iter_child_nodes(n):
                if isinstance(child, _SKIP_NODES):
                    continue
                if isinstance(child, ast.stmt) and n is not node:
                    continue
                if single or self._relevant(child, ctx):
                    stack.append((child, scope))

    def _call(self, node: ast.Call, env: Env, ctx: _Ctx) -> None:
        func = node.func
        is_method = isinstance(func, ast.Attribute)
        if is_method:
            name, owner, origin = func.attr, _dotted(func.value, self.imported), None
        elif isinstance(func, ast.Name):
            local = env.get(func.id)
            if func.id in self.imported and local is not None and local is not _IMPORT and not local.notstr:
                return  # a parameter or variable named like an import is not the import
            if func.id not in self.imported and local is not None and local is not _DEF and not local.values and (
                    not local.why.startswith(("attribute ", "result of partial("))):  # `load = datasets.load_dataset`,
                # `load_dataset = partial(load_dataset, ...)` may still be it
                return  # `pipeline = DiffusionPipeline.from_pretrained(...).to(d)`, then `pipeline(**args)`: an object
            origin = self.imported.get(func.id)
            name, owner = (origin.rsplit(".", 1)[-1] if origin else func.id), ""
        else:
            return
        if ctx.urls is None or ctx.urls and not ctx.urls.isdisjoint(range(node.lineno, (node.end_lineno or node.lineno) + 1)):
            self._urls(node, ctx)
        if name in _SAVE_CALLS and is_method:
            arg = _argument(node, _SAVE_CALLS[name], 0)
            if arg is not None:
                self.saved.update(self._eval(arg, env).values)
                self.saved_exprs.add(_source_text(arg))
        for kw in node.keywords:
            if kw.arg in _SAVE_KWS:
                self.saved.update(self._eval(kw.value, env).values)
                self.saved_exprs.add(_source_text(kw.value))
        if name == "add_argument" and is_method:
            self._argparse(node, env, ctx)
            return
        row = loaders.find(name, owner, origin, is_method)
        if row is None:
            return
        found = [kw.value for kw in node.keywords if kw.arg in row.kws]
        if not found and row.pos is not None and len(node.args) > row.pos and not any(
                isinstance(a, ast.Starred) for a in node.args[:row.pos + 1]):
            found = [node.args[row.pos]]
        if not found and not row.quiet:
            # `from_pretrained(**kwargs)`, `(*sys.argv[1:])`: the repo may be in what is unpacked (fail closed)
            unpacked = next((x for x in node.keywords if x.arg is None), None) or next(
                (a for a in node.args[:(row.pos if row.pos is not None else 0) + 1] if isinstance(a, ast.Starred)), None)
            if unpacked is not None:
                self._unresolved(unpacked.lineno if hasattr(unpacked, "lineno") else node.lineno, name,
                                 f"unpacked {_source_text(unpacked)[:60]}", ctx, node)
        for arg in found:
            self._load(node, arg, row, name, env, ctx)
        custom = _argument(node, ("custom_pipeline",), None) if name == "from_pretrained" else None
        if custom is not None:
            self._custom_pipeline(node, custom, env, ctx)

    def _custom_pipeline(self, call: ast.Call, arg: ast.expr, env: Env, ctx: _Ctx) -> None:
        """diffusers' `from_pretrained(..., custom_pipeline="org/pipe", custom_revision=...)` downloads
        org/pipe's pipeline.py and runs it: a model reference that is remote code. A single name is a
        community pipeline (diffusers' own examples) or a local file, not a Hub repo of its own."""
        value = self._eval(arg, env)
        if value.notstr:
            return
        rev = _argument(call, ("custom_revision",), None)
        got = self._eval(rev, env) if rev is not None else None
        revision = got.values[0] if got is not None and len(got.values) == 1 else None
        expr = _source_text(rev) if rev is not None and revision is None else None
        if not value.values:
            self._unresolved(arg.lineno, "custom_pipeline", value.why, ctx, call, _source_text(arg),
                             not (revision and SHA.match(revision)))
        for text in value.values:
            if "/" in text and _is_hub_repo(text, "model"):
                self._add(Reference(text, "model", self.file, arg.lineno, revision, "custom_pipeline", ctx.cell,
                                    revision_expr=expr, candidates=len(value.values), remote_code=True), ctx, call)

    def _load(self, call: ast.Call, arg: ast.expr, row: loaders.Loader, name: str, env: Env,
              ctx: _Ctx) -> None:
        value = self._eval(arg, env)
        if not value.values:
            if (value is _IMPORT or not value.notstr) and not row.quiet:
                # what it loads is unknown, but whether that runs the repo's code is not
                remote = (row.runs_code or self._truthy(_argument(call, ("trust_remote_code",), None), env)) and not (
                    (rev := self._revision(call, row, env)[0]) is not None and SHA.match(rev))
                why = f"imported name {_source_text(arg)[:60]}" if value is _IMPORT else value.why  # `from settings import M`
                self._unresolved(arg.lineno, name, why, ctx, call, _source_text(arg), remote)
            return
        rtype = self._repo_type(call, row.type, env)
        revision, revision_expr = self._revision(call, row, env)
        subset = None
        if row.subset is not None:
            sub = _argument(call, (row.subset[1],), row.subset[0])
            got = self._eval(sub, env) if sub is not None else None
            subset = got.values[0] if got is not None and len(got.values) == 1 else None
        remote = row.runs_code or self._truthy(_argument(call, ("trust_remote_code",), None), env)
        for text in value.values:
            repo = text
            if row.prefix is not None:
                if not text.startswith(row.prefix):
                    continue
                repo = text[len(row.prefix):]
            if not _is_hub_repo(repo, rtype):
                continue
            ambiguous = False
            if "/" not in repo:
                if row.namespace and not legacy.is_legacy(repo, rtype):
                    repo = f"{row.namespace}/{repo}"
                else:
                    ambiguous = not legacy.is_legacy(repo, rtype)
            self._add(Reference(repo, rtype, self.file, arg.lineno, revision, name, ctx.cell,
                                revision_expr=revision_expr, source=value.source, ambiguous=ambiguous,
                                candidates=len(value.values), subset=subset, remote_code=remote), ctx, call)

    @staticmethod
    def _waived(ctx: _Ctx, line: int, call: ast.AST | None) -> tuple[str, ...]:
        """Conditions an inline `# hubwatch: ignore[...]` waives, on the line or the call's first or last."""
        lines = {line, getattr(call, "lineno", line), getattr(call, "end_lineno", line)}
        return tuple(sorted(frozenset().union(*(ctx.ignored.get(n, frozenset()) for n in lines))))

    def _add(self, ref: Reference, ctx: _Ctx, call: ast.AST | None) -> None:
        waived = self._waived(ctx, ref.line, call) if ctx.ignored else ()
        if waived:
            ref = replace(ref, suppressed=waived)
        if ctx.file_line is not None:
            ref = replace(ref, file_line=_file_line(ctx, ref.line))
        self.refs.append(ref)

    def _unresolved(self, line: int, name: str, why: str, ctx: _Ctx, call: ast.AST, expr: str | None = None,
                    remote: bool = False) -> None:
        self.unresolved.append(Unresolved(self.file, line, name, why, ctx.cell, _file_line(ctx, line),
                                          self._waived(ctx, line, call), remote))
        self._unresolved_exprs.append(expr)

    def _revision(self, call: ast.Call, row: loaders.Loader, env: Env) -> tuple[str | None, str | None]:
        arg = _argument(call, row.revision_kw, None)
        if arg is None or (isinstance(arg, ast.Constant) and arg.value is None):
            return None, None
        value = self._eval(arg, env)
        if len(value.values) == 1:
            return value.values[0], None
        return None, _source_text(arg)

    def _repo_type(self, call: ast.Call, default: str, env: Env) -> str:
        arg = _argument(call, ("repo_type",), None)
        if arg is None:
            return default
        if isinstance(arg, ast.Attribute) and arg.attr in _REPO_TYPE_CONSTANTS:
            return _REPO_TYPE_CONSTANTS[arg.attr]
        value = self._eval(arg, env)
        return value.values[0] if len(value.values) == 1 and value.values[0] in REPO_TYPES else default

    def _truthy(self, node: ast.expr | None, env: Env) -> bool:
        """trust_remote_code=...: only a literal False (or None) is known to be off; a literal True,
        a name or an expression (`args.trust_remote_code`) may be on, so it counts (fail closed)."""
        if node is None:
            return False
        if isinstance(node, ast.Constant):
            return bool(node.value)
        return True

    def _urls(self, call: ast.Call, ctx: _Ctx) -> None:
        """`hf://datasets/org/ds@rev/x.parquet` and `https://huggingface.co/org/m/resolve/rev/f`
        given to any call (data_files=, read_parquet, load_image ...)."""
        for arg in list(call.args) + [kw.value for kw in call.keywords]:
            for const in _strings(arg):
                text = const.value
                if "hf://" not in text and "huggingface.co/" not in text and "hf.co/" not in text:
                    continue
                for m in list(_HF_URL.finditer(text)) + list(_WEB_URL.finditer(text)):
                    repo, rtype = m.group(2), _URL_TYPES[m.group(1)]
                    revision = unquote(m.group(3)) if m.group(3) else None
                    if is_hub_id(repo):
                        self._add(Reference(repo, rtype, self.file, const.lineno, revision, "url", ctx.cell), ctx, call)

    def _argparse(self, call: ast.Call, env: Env, ctx: _Ctx) -> None:
        option = next((a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                       and a.value.startswith("--")), None)
        dest_kw = _argument(call, ("dest",), None)
        dest = (dest_kw.value if isinstance(dest_kw, ast.Constant) and isinstance(dest_kw.value, str)
                else (option or "").lstrip("-").replace("-", "_"))
        default = _argument(call, ("default",), None)
        if default is not None and dest and _NOT_A_LOAD.search(dest):
            self.saved.update(self._eval(default, env).values)
        self._option_default(dest, default, env, ctx, "argparse")

    def _dataclass_fields(self, cls: ast.ClassDef, ctx: _Ctx) -> None:
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
                continue
            value = stmt.value
            if isinstance(value, ast.Call) and _dotted(value.func, {}).rsplit(".", 1)[-1] == "field":
                value = _argument(value, ("default",), None)
            if value is not None and _NOT_A_LOAD.search(stmt.target.id):
                self.saved.update(self._eval(value, Env()).values)
            self._option_default(stmt.target.id, value, Env(), ctx, "field")

    def _option_default(self, dest: str, default: ast.expr | None, env: Env, ctx: _Ctx, via: str) -> None:
        if not dest or default is None or not _OPTION.search(dest) or _NOT_A_LOAD.search(dest):
            return
        value = self._eval(default, env)
        if len(value.values) != 1:
            return
        repo = value.values[0]
        rtype = "dataset" if "data" in dest.lower() else "model"
        if not _is_hub_repo(repo, rtype) or ("/" not in repo and not legacy.is_legacy(repo, rtype)):
            return  # an option default that is not clearly a Hub id ("gpt", "auto") is not a reference
        self._add(Reference(repo, rtype, self.file, default.lineno, None, f"{via} {dest}"[:80], ctx.cell,
                            source="default"), ctx, None)


def _merge(vals: list[Val]) -> Val:
    bound = [v for v in vals if v is not _UNBOUND]
    if bound and len(bound) < len(vals) and all(v is _IMPORT for v in bound):
        return _IMPORT  # `try: from x import p / except ImportError: pass`
    if all(v is _IMPORT for v in vals):
        return _IMPORT
    if all(v.values for v in vals):
        out = tuple(dict.fromkeys(x for v in vals for x in v.values))
        if len(out) > MAX_CANDIDATES:
            return Val(why=f"more than {MAX_CANDIDATES} candidate values")
        return Val(out, source="default" if any(v.source for v in vals) else None)
    if all(v.notstr for v in vals):
        return _NONE
    return next((v for v in vals if not v.values and not v.notstr), Val(why="differs between branches"))


def _concat(parts: list[Val], what: str) -> Val:
    out = [""]
    for p in parts:
        if not p.values:
            return Val(why=f"{what} of {p.why or 'a non-string'}")
        out = [a + b for a in out for b in p.values]
        if len(out) > MAX_CANDIDATES:
            return Val(why=f"{what} with too many values")
    return Val(tuple(dict.fromkeys(out)), source="default" if any(p.source for p in parts) else None)


def _targets(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id


def _lambda_args(node: ast.Lambda) -> Iterator[str]:
    a = node.args
    for arg in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
        yield arg.arg


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            yield n
        elif isinstance(n, (ast.List, ast.Tuple, ast.Set)):
            stack.extend(n.elts)
        elif isinstance(n, ast.Dict):
            stack.extend(v for v in n.values if v is not None)


def _file_line(ctx: _Ctx, line: int) -> int | None:
    if ctx.file_line is None:
        return None
    return ctx.file_line + (line - 1 if ctx.per_line else 0)


def _source_text(node: ast.expr) -> str:
    try:
        return ast.unparse(node)[:200]
    except Exception:  # noqa: BLE001 - only a label for the report
        return type(node).__name__


def _argument(call: ast.Call, keywords: tuple[str, ...], position: int | None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg in keywords:
            return kw.value
    if position is not None and len(call.args) > position and not any(
            isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return call.args[position]
    return None


def _dotted(node: ast.expr, imported: dict[str, str]) -> str:
    """`a.b.C` as written, its first name read through the imports (`PM` -> `peft.PeftModel`)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(imported.get(node.id, node.id))
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func, imported))
    return ".".join(reversed(parts))


def _is_hub_repo(text: str, rtype: str) -> bool:
    if not is_hub_id(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    return not (rtype == "dataset" and text.lower() in PACKAGED_BUILDERS)
