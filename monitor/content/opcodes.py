"""Walk pickle opcodes without unpickling: which callables would the stream import and call?

`pickletools.genops` splits the stream into opcodes; `Walker` replays their effect on a model of
the unpickler's stack and memo (the C unpickler's rules: a MARK stack beside the object stack,
POP that removes a bare mark, MEMOIZE numbering by memo size) holding only literal values
(str, bytes, int, float, bool, None, tuples, lists, dicts) and opaque `Global`/`Call` stand-ins.
Nothing is imported or called. That is enough to name every `GLOBAL`, `STACK_GLOBAL` (also when
its strings come from the memo), `INST`, `EXT1/2/4`; to see what each `REDUCE`/`OBJ`/`NEWOBJ`
calls; to follow joblib's raw array bytes inline in the stream; and to take the literal bytes a
nested-pickle loader is given.

A stream is read through `fetch(offset, length)` in growing windows, so a pickle followed by
gigabytes of raw storage costs only the pickle; the bytes of opcodes parsed per stream are capped.
"""

from __future__ import annotations

import io
import math
import pickletools
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from dataclasses import dataclass, field
from typing import Callable

from monitor.content import allowlist

_WINDOW = 64 * 1024
_MAX_FETCHES = 4096   # windows per stream (most are served from the block at hand)
HIGHEST_PROTOCOL = 5


class WalkError(Exception):
    """The stream cannot be followed to STOP the way an unpickler would."""


class OverCap(WalkError):
    """The stream goes on past the bytes we may parse for it."""

    def __init__(self):
        super().__init__("pickle stream over the byte cap")


class Global:
    """A callable or class the stream imports (the object the unpickler would look up)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class Call:
    """The result of calling something: REDUCE, OBJ, INST, NEWOBJ(_EX); BUILD sets `state`."""

    __slots__ = ("func", "args", "state")

    def __init__(self, func: object, args: object):
        self.func, self.args, self.state = func, args, None


class Opaque:
    """A value we do not model (persistent ids, sets, buffers)."""

    __slots__ = ()


OPAQUE = Opaque()


@dataclass
class Findings:
    """What every stream of one file imported, in first-seen order, and nested pickles found."""

    imports: dict[str, None] = field(default_factory=dict)
    nested_bytes: list[tuple[str, bytes]] = field(default_factory=list)  # (loader, literal bytes)
    nested_unresolved: dict[str, None] = field(default_factory=dict)     # loader called otherwise
    # judged dangerous whatever the tables say: a STACK_GLOBAL of strings computed at load time,
    # or an attribute chain that walks into a dangerous module (`torch` + `os.system`)
    forced: dict[str, None] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.imports.setdefault(name, None)


def _global_name(module: str, name: str, proto: int) -> str:
    # The unpickler's fix_imports: Python 2 names in protocols 0-2 are mapped to Python 3 ones.
    if proto < 3:
        if (module, name) in NAME_MAPPING:
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _two_lines(data: bytes, start: int) -> tuple[str, str]:
    """The module and name lines of GLOBAL/INST, as the unpickler reads them (UTF-8, strict)."""
    first = data.index(b"\n", start)
    second = data.index(b"\n", first + 1)
    return data[start:first].decode("utf-8"), data[first + 1:second].decode("utf-8")


class Walker:
    """Replays one pickle stream (a fresh unpickler: own stack and memo)."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int | None, cap: int,
                 findings: Findings, depth: int = 0,
                 window: Callable[[int, int], bytes] | None = None,
                 memo: dict[int, object] | None = None):
        """`fetch(offset, length)` returns exactly the bytes asked for (fewer only at the end);
        `window` may return fewer (what is at hand) when `size` is known."""
        self.fetch, self.size, self.cap, self.f, self.depth = fetch, size, cap, findings, depth
        self.window = window if window is not None and size is not None else fetch
        self.parsed = 0
        self.fetches = 0
        self.stack: list[object] = []
        self.marks: list[int] = []
        # one Unpickler calling load() again keeps its memo: pass the previous stream's
        self.memo: dict[int, object] = memo if memo is not None else {}
        self.proto = 0

    # -- stack model --------------------------------------------------------------------
    def _pop(self) -> object:
        fence = self.marks[-1] if self.marks else 0
        if len(self.stack) <= fence:
            raise WalkError("stack underflow")
        return self.stack.pop()

    def _top(self) -> object:
        fence = self.marks[-1] if self.marks else 0
        if len(self.stack) <= fence:
            raise WalkError("stack underflow")
        return self.stack[-1]

    def _pop_mark(self) -> list[object]:
        if not self.marks:
            raise WalkError("MARK expected")
        at = self.marks.pop()
        items = self.stack[at:]
        del self.stack[at:]
        return items

    def _import(self, name: str, attr: str = "") -> Global:
        self.f.add(name)
        if "." in attr and allowlist.chain_reaches_danger(attr):
            self.f.forced.setdefault(name, None)
        return Global(name)

    def _called(self, func: object, args: object) -> Call:
        if isinstance(func, Global) and func.name in allowlist.CALL_DANGEROUS:
            self.f.forced.setdefault(func.name, None)
        if isinstance(args, tuple) and not (
                isinstance(func, Global) and func.name in allowlist.CLASS_TAKERS):
            for arg in args:   # copyreg._reconstructor(cls, base, ...) calls base.__new__
                if isinstance(arg, Global) and arg.name in allowlist.CALL_DANGEROUS:
                    self.f.forced.setdefault(arg.name, None)
        if isinstance(func, Global) and allowlist.judge(func.name) == "nested":
            if (isinstance(args, tuple) and len(args) == 1
                    and isinstance(args[0], (bytes, bytearray))):
                self.f.nested_bytes.append((func.name, bytes(args[0])))
            else:
                self.f.nested_unresolved.setdefault(func.name, None)
        return Call(func, args)

    # -- one stream ---------------------------------------------------------------------
    def walk(self, start: int) -> tuple[int, object]:
        """Follow one pickle from `start` to its STOP; return (offset after STOP, its value).
        Raises WalkError (names found before the error stay in `findings`)."""
        pos, window, exact = start, _WINDOW, False
        while True:
            want = min(window, self.cap - self.parsed + 1)
            self.fetches += 1
            if self.fetches > _MAX_FETCHES:
                raise WalkError(f"more than {_MAX_FETCHES} ranges needed to follow the stream")
            if self.size is not None and pos > self.size:
                raise WalkError("the stream points past the end of the file")
            data = (self.fetch if exact else self.window)(pos, want) if want > 0 else b""
            if self.size is not None:
                at_end = pos + len(data) >= self.size or not data
            else:
                at_end = len(data) < want
            outcome, new_pos, value = self._run(data, pos, at_end)
            self.parsed += new_pos - pos if outcome != "skip" else self._skip_parsed
            if outcome == "stop":
                return new_pos, value
            if outcome == "error":
                raise WalkError(value)
            if self.parsed > self.cap:
                raise OverCap()
            if outcome == "skip":            # joblib raw array bytes: continue past them
                pos, window = new_pos, _WINDOW
                continue
            # the window ended inside an opcode: read on from the last whole opcode
            if new_pos == pos:
                if not exact and len(data) < want:   # only part of a kept block: read it whole
                    exact = True
                    continue
                if want < self.cap - self.parsed + 1:
                    window, exact = window * 4, True
                    continue
                raise OverCap()
            pos, window, exact = new_pos, window * 2, False   # long stream: fewer ranges

    def _run(self, data: bytes, base: int, at_end: bool) -> tuple[str, int, object]:
        stream = io.BytesIO(data)
        done = 0  # offset in data after the last opcode applied
        self._skip_parsed = 0
        try:
            effects, tell = _EFFECTS, stream.tell
            for op, arg, at in pickletools.genops(stream):
                nxt = tell()
                result = effects[op.name](self, op.name, arg, data, at, base + nxt)
                done = nxt
                if op.name == "STOP":
                    return "stop", base + done, result
                if result is not None:        # joblib: skip to an absolute offset
                    self._skip_parsed = done
                    return "skip", result, None
        except WalkError:
            raise
        except (ValueError, UnicodeDecodeError, OverflowError, IndexError, KeyError) as exc:
            # an error before the window's last byte is the stream's own; at the very end it may
            # only be the window cutting an opcode short (read on, unless the file ends there)
            if at_end or stream.tell() < len(data):
                return "error", base + done, _describe(exc, base, data, done)
            return "more", base + done, None
        if at_end:
            return "error", base + done, "stream ends before STOP"
        return "more", base + done, None

    # -- opcode effects (one function per opcode family; `_EFFECTS` maps names to them) ----
    def _push_arg(self, name, arg, data, at, after):
        self.stack.append(arg)

    def _push_str(self, name, arg, data, at, after):
        self.stack.append(arg if isinstance(arg, str) else bytes(arg).decode("latin-1"))

    def _push_bytes(self, name, arg, data, at, after):
        self.stack.append(bytes(arg))

    def _push_const(self, name, arg, data, at, after):
        self.stack.append(_CONSTANTS[name]())

    def _readonly(self, name, arg, data, at, after):
        self._top()

    def _append(self, name, arg, data, at, after):
        value = self._pop()
        target = self._top()
        if isinstance(target, list):
            target.append(value)

    def _appends(self, name, arg, data, at, after):
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, list):
            target.extend(items)

    def _list(self, name, arg, data, at, after):
        self.stack.append(self._pop_mark())

    def _tuple(self, name, arg, data, at, after):
        self.stack.append(tuple(self._pop_mark()))

    def _tuple_n(self, name, arg, data, at, after):
        items = [self._pop() for _ in range(int(name[-1]))]
        self.stack.append(tuple(reversed(items)))

    def _dict(self, name, arg, data, at, after):
        self.stack.append(_pairs({}, self._pop_mark()))

    def _setitem(self, name, arg, data, at, after):
        value, key = self._pop(), self._pop()
        target = self._top()
        if isinstance(target, dict):
            _pairs(target, [key, value])

    def _setitems(self, name, arg, data, at, after):
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, dict):
            _pairs(target, items)

    def _additems(self, name, arg, data, at, after):
        self._pop_mark()
        self._top()

    def _frozenset(self, name, arg, data, at, after):
        self._pop_mark()
        self.stack.append(OPAQUE)

    def _pop_op(self, name, arg, data, at, after):
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()       # the C unpickler's POP removes a bare MARK
        else:
            self._pop()

    def _pop_mark_op(self, name, arg, data, at, after):
        self._pop_mark()

    def _dup(self, name, arg, data, at, after):
        self.stack.append(self._top())

    def _mark(self, name, arg, data, at, after):
        self.marks.append(len(self.stack))

    def _get(self, name, arg, data, at, after):
        if arg not in self.memo:
            raise WalkError(f"memo key {arg} read before it was written")
        self.stack.append(self.memo[arg])

    def _put(self, name, arg, data, at, after):
        if arg < 0:
            raise WalkError("negative memo key")
        self.memo[arg] = self._top()

    def _memoize(self, name, arg, data, at, after):
        self.memo[len(self.memo)] = self._top()

    def _ext(self, name, arg, data, at, after):
        known = allowlist.EXTENSION_CODES.get(arg)
        self.stack.append(self._import(known or f"copyreg.extension_code_{arg}"))

    def _global(self, name, arg, data, at, after):
        module, attr = _two_lines(data, at + 1)
        glob = self._import(_global_name(module, attr, self.proto), attr)
        if name == "GLOBAL":
            self.stack.append(glob)
        else:   # INST: import, then call with the items above the mark
            self.stack.append(self._called(glob, tuple(self._pop_mark())))

    def _stack_global(self, name, arg, data, at, after):
        attr, module = self._pop(), self._pop()
        if isinstance(attr, str) and isinstance(module, str):
            self.stack.append(self._import(_global_name(module, attr, self.proto), attr))
        elif any(isinstance(v, (Call, Global, Opaque)) for v in (module, attr)):
            # a name computed at load time (e.g. a call's result): nothing real writes this
            shown = [v if isinstance(v, str) else "<computed>" for v in (module, attr)]
            computed = f"{shown[0]}.{shown[1]}"
            self.f.add(computed)
            self.f.forced.setdefault(computed, None)
            self.stack.append(Global(computed))
        else:
            raise WalkError("STACK_GLOBAL requires str")

    def _reduce(self, name, arg, data, at, after):
        args, func = self._pop(), self._pop()
        self.stack.append(self._called(func, args))

    def _obj(self, name, arg, data, at, after):
        items = self._pop_mark()
        if not items:
            raise WalkError("OBJ without a class")
        self.stack.append(self._called(items[0], tuple(items[1:])))

    def _newobj(self, name, arg, data, at, after):
        if name == "NEWOBJ_EX":
            self._pop()            # kwargs
        args, cls = self._pop(), self._pop()
        self.stack.append(self._called(cls, args))

    def _build(self, name, arg, data, at, after):
        state = self._pop()
        target = self._top()
        if isinstance(target, Call):
            target.state = state
            if _makes_joblib_wrapper(target):
                return self._joblib_array(target, after)
        return None

    def _persid(self, name, arg, data, at, after):
        if name == "BINPERSID":
            self._pop()
        self.stack.append(OPAQUE)

    def _proto(self, name, arg, data, at, after):
        if not 0 <= arg <= HIGHEST_PROTOCOL:
            raise WalkError(f"unsupported pickle protocol: {arg}")
        self.proto = arg

    def _nothing(self, name, arg, data, at, after):
        return None

    def _stop(self, name, arg, data, at, after):
        return self._pop()

    # -- joblib ---------------------------------------------------------------------------
    def _joblib_array(self, wrapper: Call, after: int) -> int:
        """joblib's NumpyUnpickler reads the array right after the wrapper's BUILD: an inline
        pickle for object dtypes, else an optional alignment-padding byte and the raw bytes.
        Returns the absolute offset where the opcodes resume."""
        state = wrapper.state if isinstance(wrapper.state, dict) else {}
        shape, dtype = state.get("shape"), state.get("dtype")
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise WalkError("joblib array wrapper without a literal shape")
        itemsize, hasobject = _dtype_size(dtype)
        if hasobject:
            if self.depth >= 3:
                raise WalkError("nested pickles deeper than 3")
            inner = Walker(self.fetch, self.size, self.cap - self.parsed, self.f, self.depth + 1,
                           self.window)
            end, _ = inner.walk(after)
            self.parsed += inner.parsed
            return end
        pos = after
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = self.fetch(pos, 1)
            if len(pad) != 1:
                raise WalkError("joblib array padding missing")
            pos += 1 + pad[0]
        return pos + math.prod(shape) * itemsize


def _makes_joblib_wrapper(call: Call) -> bool:
    """Is this (as joblib's `isinstance(stack[-1], NumpyArrayWrapper)` after BUILD would see it)
    a joblib array wrapper? Made by calling the class (REDUCE/OBJ/INST/NEWOBJ) or through
    copyreg's reconstructors, which take the class as first argument."""
    func = call.func
    if not isinstance(func, Global):
        return False
    if func.name in allowlist.JOBLIB_WRAPPERS:
        return True
    if func.name in ("copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"):
        args = call.args
        return (isinstance(args, tuple) and bool(args) and isinstance(args[0], Global)
                and args[0].name in allowlist.JOBLIB_WRAPPERS)
    return False


def _pairs(target: dict, items: list[object]) -> dict:
    if len(items) % 2:
        raise WalkError("odd number of items for a dict")
    for key, value in zip(items[::2], items[1::2]):
        if isinstance(key, (str, int, bytes)):
            target[key] = value
    return target


def _dtype_size(dtype: object) -> tuple[int, bool]:
    """(itemsize, has objects) of a dtype the stream rebuilt as numpy.dtype(typestr, …)."""
    import numpy

    if not (isinstance(dtype, Call) and isinstance(dtype.func, Global)
            and dtype.func.name == "numpy.dtype" and isinstance(dtype.args, tuple)
            and dtype.args and isinstance(dtype.args[0], str)):
        raise WalkError("joblib array wrapper without a literal numpy dtype")
    typestr = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    if typestr.startswith("O") or flags & 1:
        return 8, True
    try:
        size = numpy.dtype(typestr).itemsize
    except (TypeError, ValueError) as exc:
        raise WalkError(f"joblib array dtype {typestr!r} not understood") from exc
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        size = state[5]
    if size <= 0:
        raise WalkError(f"joblib array dtype {typestr!r} has no size")
    return size, False


def _describe(exc: Exception, base: int, data: bytes, done: int) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "opcode" in text and "unknown" in text:
        code = data[done:done + 1]
        return f"unsupported opcode {code!r} at byte {base + done}"
    return f"stream does not parse at byte {base + done}: {text[:120]}"


_CONSTANTS = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
              "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple,
              "EMPTY_SET": lambda: OPAQUE, "NEXT_BUFFER": lambda: OPAQUE}
_FAMILIES = {
    Walker._push_arg: ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
                       "BINFLOAT", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"),
    Walker._push_str: ("STRING", "BINSTRING", "SHORT_BINSTRING"),
    Walker._push_bytes: ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"),
    Walker._push_const: tuple(_CONSTANTS),
    Walker._readonly: ("READONLY_BUFFER",), Walker._append: ("APPEND",),
    Walker._appends: ("APPENDS",), Walker._list: ("LIST",), Walker._tuple: ("TUPLE",),
    Walker._tuple_n: ("TUPLE1", "TUPLE2", "TUPLE3"), Walker._dict: ("DICT",),
    Walker._setitem: ("SETITEM",), Walker._setitems: ("SETITEMS",),
    Walker._additems: ("ADDITEMS",), Walker._frozenset: ("FROZENSET",), Walker._pop_op: ("POP",),
    Walker._pop_mark_op: ("POP_MARK",), Walker._dup: ("DUP",), Walker._mark: ("MARK",),
    Walker._get: ("GET", "BINGET", "LONG_BINGET"), Walker._put: ("PUT", "BINPUT", "LONG_BINPUT"),
    Walker._memoize: ("MEMOIZE",), Walker._ext: ("EXT1", "EXT2", "EXT4"),
    Walker._global: ("GLOBAL", "INST"), Walker._stack_global: ("STACK_GLOBAL",),
    Walker._reduce: ("REDUCE",), Walker._obj: ("OBJ",), Walker._newobj: ("NEWOBJ", "NEWOBJ_EX"),
    Walker._build: ("BUILD",), Walker._persid: ("PERSID", "BINPERSID"),
    Walker._proto: ("PROTO",), Walker._nothing: ("FRAME",), Walker._stop: ("STOP",),
}
_EFFECTS = {name: effect for effect, names in _FAMILIES.items() for name in names}
if set(_EFFECTS) != {op.name for op in pickletools.opcodes}:   # a new Python's new opcodes
    raise ImportError("monitor.content.opcodes does not model every pickle opcode")
