"""The pickle-inspection corpus, built here byte by byte (no downloads), for the pure tests and
for the end-to-end ones (`hubwatch once` against the emulator).

    from tests.content_corpus import evil_cases, benign_cases, all_cases
    for name, data, severity in all_cases():   # Case(name, data, severity); case.note;
                                               # EXPECTED_IMPORT[name] for critical ones
        ...                                    # name: the repo path to publish it under

`severity` is what `inspect_file` must answer: evil cases are "critical" or "high"; benign ones,
written the way the real writers write them, are "medium" (a pickle, every import allowlisted)
or "none" (no pickle at all). Real writers are reproduced with the real `pickle` module (and
numpy / joblib) where possible; torch, transformers and sklearn are not installed, so their
classes are stand-ins registered under the real module names only while a stream is written,
which makes the pickler emit exactly the GLOBAL/STACK_GLOBAL opcodes the real library's objects
produce. ZIP archives are written by `zip_archive` here, laid out as PyTorch's writer lays them
out (stored members under `<stem>/`, 64-byte alignment padding in the local extra field only).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import os
import pickle
import random
import struct
import sys
import tarfile
import types
import typing
import zlib
from collections import OrderedDict
from typing import Iterator, NamedTuple

import numpy as np


class _Case(NamedTuple):
    name: str        # path in the repo
    data: bytes
    severity: str    # what inspect_file must say: critical | high | medium | none


class Case(_Case):
    """(name, data, severity); `.note` says what the case is."""

    @property
    def note(self) -> str:
        return NOTES.get(self.name, "")


NOTES: dict[str, str] = {}


def _adder(cases: list[Case]):
    def add(name: str, data: bytes, severity: str, note: str) -> None:
        NOTES[name] = note
        cases.append(Case(name, data, severity))
    return add


# ------------------------------------------------------------------ a tiny pickle assembler
def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def s(text: str) -> bytes:                       # SHORT_BINUNICODE (protocol 4)
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def u(text: str) -> bytes:                       # BINUNICODE (protocol 1+)
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


MARK, TUPLE, TUPLE1, TUPLE2, REDUCE, STOP, POP = b"(", b"t", b"\x85", b"\x86", b"R", b".", b"0"
STACK_GLOBAL, MEMOIZE, BUILD, EMPTY_DICT = b"\x93", b"\x94", b"b", b"}"


def call(func: bytes, *args: bytes) -> bytes:
    return func + MARK + b"".join(args) + TUPLE + REDUCE


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


# ------------------------------------------------------------------ stand-in modules
@contextlib.contextmanager
def stand_ins(spec: dict[str, dict[str, object]]) -> Iterator[None]:
    """Register modules `name -> {attr: obj}` for the duration of a dump (objects get their
    __module__/__qualname__ set so the pickler names them as the real library would)."""
    spec = dict(spec)
    for name in list(spec):
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in sys.modules:
                spec.setdefault(parent, {})
    saved = {name: sys.modules.get(name) for name in spec}
    try:
        for mod_name, attrs in spec.items():
            mod = types.ModuleType(mod_name)
            for attr, obj in attrs.items():
                with contextlib.suppress(AttributeError, TypeError):
                    obj.__module__ = mod_name
                    obj.__qualname__ = attr
                    obj.__name__ = attr
                setattr(mod, attr, obj)
            sys.modules[mod_name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only named
    raise AssertionError


def _storage_class(kind: str) -> type:
    return type(f"{kind}Storage", (), {})


_DTYPES = {"Float": np.float32, "Half": np.float16, "BFloat16": np.uint16, "Long": np.int64,
           "Byte": np.uint8, "Bool": np.bool_, "Int": np.int32, "Double": np.float64}


class _Storage:
    def __init__(self, kind: str, key: str, data: bytes, numel: int):
        self.kind, self.key, self.data, self.numel = kind, key, data, numel


class _Tensor:
    """Pickles as torch.Tensor.__reduce_ex__ does: _rebuild_tensor_v2(storage, offset, size,
    stride, requires_grad, backward_hooks)."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        torch_utils = sys.modules["torch._utils"]
        return (torch_utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, OrderedDict()))


def _torch_modules(extra: dict[str, dict[str, object]] | None = None) -> dict:
    spec = {
        "torch": {f"{k}Storage": _storage_class(k) for k in _DTYPES},
        "torch._utils": {"_rebuild_tensor_v2": _rebuild_tensor_v2},
    }
    spec.update(extra or {})
    return spec


def torch_pickle(obj: object, *, legacy: bool = False) -> tuple[bytes, list[_Storage]]:
    """data.pkl as torch.save writes it (protocol 2, storages as persistent ids)."""
    storages: list[_Storage] = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                if o not in storages:
                    storages.append(o)
                cls = getattr(sys.modules["torch"], f"{o.kind}Storage")
                if legacy:
                    return ("storage", cls, o.key, "cpu", o.numel, None)
                return ("storage", cls, o.key, "cpu", o.numel)
            return None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue(), storages


def state_dict(kinds: tuple[str, ...], seed: int = 0) -> OrderedDict:
    rng = np.random.default_rng(seed)
    sd: OrderedDict = OrderedDict()
    for i, kind in enumerate(kinds):
        arr = (rng.standard_normal((4, 3)) * 10).astype(_DTYPES[kind])
        sd[f"layers.{i}.weight"] = _Tensor(_Storage(kind, str(i), arr.tobytes(), arr.size), (4, 3))
    sd._metadata = OrderedDict({"": {"version": 1}})  # what nn.Module.state_dict() attaches
    return sd


# ------------------------------------------------------------------ ZIP writer
def zip_segments(members: list[tuple[str, bytes | int]], *, deflate: tuple[str, ...] = (),
                 align: int = 64, local_name: dict[str, str] | None = None,
                 local_flags: dict[str, int] | None = None,
                 zip64: bool = False) -> list[bytes | int]:
    """A ZIP as PyTorch's writer makes it: stored members, the data of each aligned to `align`
    bytes by an extra field in the local header only; ZIP64 records when `zip64` (or a member
    past 4 GiB). A member's data may be an int: that many zero bytes, left as a hole in the
    returned segments (bytes, or int for a hole) so a 5 GB archive needs no 5 GB of memory.
    `local_name`/`local_flags` make a local header disagree with the central directory (the
    picklescan CVE-2025-1944/1945 tricks)."""
    segments: list[bytes | int] = []
    out, central, pos = bytearray(), bytearray(), 0
    for name, data in members:
        size = data if isinstance(data, int) else len(data)
        method = 8 if name in deflate else 0
        if isinstance(data, int):
            payload, crc = data, 0
        else:
            body = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = body.compress(data) + body.flush() if method else data
            crc = zlib.crc32(data)
        csize = payload if isinstance(payload, int) else len(payload)
        raw = name.encode()
        lraw = (local_name or {}).get(name, name).encode()
        lflags = (local_flags or {}).get(name, 0)
        offset = pos + len(out)
        big = zip64 or size >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
        local64 = struct.pack("<2H2Q", 1, 16, size, csize) if big else b""
        pad = (-(offset + 30 + len(lraw) + len(local64) + 4)) % align if align else 0
        extra = local64 + ((struct.pack("<2H", 0x4246, pad) + b"Z" * pad) if align else b"")
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if big else (csize, size)
        out += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 45 if big else 20, 0, lflags, method, 0,
                           0x21, crc, *sizes, len(lraw), len(extra)) + lraw + extra
        if isinstance(payload, int):
            segments += [bytes(out), payload]
            pos += len(out) + payload
            out = bytearray()
        else:
            out += payload
        central64 = struct.pack("<2H3Q", 1, 24, size, csize, offset) if big else b""
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 45 if big else 20, 3,
                               45 if big else 20, 0, 0, method, 0, 0x21, crc, *sizes, len(raw),
                               len(central64), 0, 0, 0, 0,
                               0xFFFFFFFF if big else offset) + raw + central64
    cd_at = pos + len(out)
    out += central
    n = len(members)
    if zip64 or cd_at >= 0xFFFFFFFF:
        eocd64_at = cd_at + len(central)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(central), cd_at)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_at, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), cd_at, 0)
    segments.append(bytes(out))
    return segments


def zip_archive(members: list[tuple[str, bytes]], **kw) -> bytes:
    """zip_segments joined into bytes (holes as zeros)."""
    return b"".join(bytes(seg) if isinstance(seg, int) else seg
                    for seg in zip_segments(members, **kw))


def torch_zip(obj: object, stem: str = "archive", *, extra_members=(), deflate=(),
              spec: dict | None = None, **zip_kw) -> bytes:
    """torch.save(obj) (≥ 1.6 ZIP layout): <stem>/data.pkl, data/<key>, version, byteorder,
    .data/version and .data/serialization_id."""
    with stand_ins(_torch_modules(spec)):
        pkl, storages = torch_pickle(obj)
    members = [(f"{stem}/data.pkl", pkl), (f"{stem}/.format_version", b"1"),
               (f"{stem}/.storage_alignment", b"64"), (f"{stem}/byteorder", b"little")]
    members += [(f"{stem}/data/{st.key}", st.data) for st in storages]
    members += [(f"{stem}/version", b"3\n"), (f"{stem}/.data/version", b"3\n"),
                (f"{stem}/.data/serialization_id", b"1234567890123456789012345678901234567890")]
    members += list(extra_members)
    return zip_archive(members, deflate=tuple(deflate), **zip_kw)


def torch_legacy(obj: object, *, spec: dict | None = None) -> bytes:
    """torch.save(obj, _use_new_zipfile_serialization=False): magic, protocol version, sys
    info, the object, the storage keys (5 pickles), then each storage raw (8-byte numel, data)."""
    with stand_ins(_torch_modules(spec)):
        body, storages = torch_pickle(obj, legacy=True)
    out = bytearray()
    for value in (0x1950A86A20F9469CFC6C, 1001,
                  {"protocol_version": 1001, "little_endian": True,
                   "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        out += pickle.dumps(value, protocol=2)
    out += body
    out += pickle.dumps([st.key for st in storages], protocol=2)
    for st in storages:
        out += struct.pack("<q", st.numel) + st.data
    return bytes(out)


def torch_tar(obj: object) -> bytes:
    """The oldest torch layout (a tar of sys_info, pickle, storages, tensors)."""
    with stand_ins(_torch_modules()):
        body, storages = torch_pickle(obj, legacy=True)
        storage_rec = bytearray(pickle.dumps(len(storages), protocol=2))
        for st in storages:
            cls = getattr(sys.modules["torch"], f"{st.kind}Storage")
            storage_rec += pickle.dumps((st.key, "cpu", cls), protocol=2)
            storage_rec += struct.pack("<q", st.numel) + st.data
        storage_rec += pickle.dumps([], protocol=2)
    tensors_rec = pickle.dumps(0, protocol=2)
    return _tar([("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
                 ("pickle", body), ("storages", bytes(storage_rec)), ("tensors", tensors_rec)])


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ------------------------------------------------------------------ Trainer, rng, joblib
class IntervalStrategy(str, enum.Enum):
    NO, STEPS, EPOCH = "no", "steps", "epoch"


class SchedulerType(str, enum.Enum):
    LINEAR, COSINE = "linear", "cosine"


class OptimizerNames(str, enum.Enum):
    ADAMW_TORCH = "adamw_torch"


@dataclasses.dataclass
class TrainingArguments:
    output_dir: str = "out"
    learning_rate: float = 5e-5
    eval_strategy: IntervalStrategy = IntervalStrategy.STEPS
    save_strategy: IntervalStrategy = IntervalStrategy.EPOCH
    lr_scheduler_type: SchedulerType = SchedulerType.COSINE
    optim: OptimizerNames = OptimizerNames.ADAMW_TORCH
    report_to: list = dataclasses.field(default_factory=lambda: ["tensorboard"])


_TRAINER_SPEC = {
    "transformers.training_args": {"TrainingArguments": TrainingArguments,
                                   "OptimizerNames": OptimizerNames},
    "transformers.trainer_utils": {"IntervalStrategy": IntervalStrategy,
                                   "SchedulerType": SchedulerType},
}


def training_args_bin() -> bytes:
    return torch_zip(TrainingArguments(), stem="training_args", spec=_TRAINER_SPEC)


class BatchSamplers(str, enum.Enum):
    NO_DUPLICATES = "no_duplicates"


@dataclasses.dataclass
class SentenceTransformerTrainingArguments(TrainingArguments):
    batch_sampler: BatchSamplers = BatchSamplers.NO_DUPLICATES


def sentence_transformers_training_args_bin() -> bytes:
    spec = {**_TRAINER_SPEC, "sentence_transformers.training_args": {
        "SentenceTransformerTrainingArguments": SentenceTransformerTrainingArguments,
        "BatchSamplers": BatchSamplers}}
    return torch_zip(SentenceTransformerTrainingArguments(), stem="training_args", spec=spec)


def rng_state_pth() -> bytes:
    rng = np.random.RandomState(0)
    cpu = _Tensor(_Storage("Byte", "0", bytes(range(256)) * 20, 5120), (5120,))
    state = {"python": random.Random(0).getstate(), "numpy": rng.get_state(), "cpu": cpu}
    return torch_zip(state, stem="rng_state")


class LogisticRegression:
    def __init__(self):
        self.C, self.penalty, self.solver = 1.0, "l2", "lbfgs"
        self.classes_ = np.array([0, 1, 2])
        self.coef_ = np.arange(12, dtype=np.float64).reshape(3, 4)
        self.intercept_ = np.zeros(3)
        self.n_iter_ = np.array([17], dtype=np.int32)
        self.nodes = np.zeros(5, dtype=[("left", "<i8"), ("threshold", "<f8"), ("n", "<u1")])


def joblib_estimator(payload: object | None = None) -> bytes:
    import joblib

    est = LogisticRegression()
    if payload is not None:
        est.extra = payload
    buf = io.BytesIO()
    with stand_ins({"sklearn.linear_model._logistic": {"LogisticRegression": LogisticRegression}}):
        joblib.dump(est, buf)
    return buf.getvalue()


# Lightning keeps hyper-parameters as an omegaconf DictConfig (pickled through its __dict__:
# _metadata a ContainerMetadata dataclass with typing.Any fields, _content a dict of nodes).
@dataclasses.dataclass
class ContainerMetadata:
    ref_type: object = None
    object_type: object = None
    optional: bool = True
    key: object = None
    flags: dict = dataclasses.field(default_factory=dict)
    key_type: object = None
    element_type: object = None


@dataclasses.dataclass
class Metadata:
    ref_type: object = None
    object_type: object = None
    optional: bool = True
    key: object = None
    flags: dict = dataclasses.field(default_factory=dict)


class AnyNode:
    def __init__(self, value, key):
        self.__dict__.update(_val=value, _metadata=Metadata(typing.Any, None, True, key, {}),
                             _parent=None)


class DictConfig:
    def __init__(self, content: dict):
        meta = ContainerMetadata(typing.Any, dict, True, None, {}, typing.Any, typing.Any)
        nodes = {k: AnyNode(v, k) for k, v in content.items()}
        self.__dict__.update(_metadata=meta, _parent=None, _content=nodes)


_OMEGACONF_SPEC = {
    "omegaconf.dictconfig": {"DictConfig": DictConfig},
    "omegaconf.base": {"ContainerMetadata": ContainerMetadata, "Metadata": Metadata},
    "omegaconf.nodes": {"AnyNode": AnyNode},
}


def lightning_ckpt() -> bytes:
    ckpt = {"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.2.0",
            "state_dict": state_dict(("Float", "Half")),
            "hyper_parameters": DictConfig({"lr": 0.001, "layers": 12, "name": "tiny"}),
            "loops": {"fit_loop": {"state_dict": {}}}, "optimizer_states": [],
            "lr_schedulers": []}
    return torch_zip(ckpt, stem="last", spec=_OMEGACONF_SPEC)


class _Reduce:
    """An object whose pickle calls `func(*args)` (to put a payload inside a real writer's)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def npz(compressed: bool = True, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


# ------------------------------------------------------------------ the cases
SYSTEM = call(glob("posix", "system"), u("id"))
EVIL_PKL = proto(2) + SYSTEM + STOP


# The dangerous import each critical case must be named by (alerts name `module.name`).
EXPECTED_IMPORT: dict[str, str] = dict([
    ("os_system.pkl", "posix.system"), ("exec.pkl", "builtins.exec"),
    ("eval_py2.pkl", "builtins.eval"), ("getattr_chain.pkl", "builtins.getattr"),
    ("memo_stack_global.pkl", "os.system"), ("memo_binput.pkl", "subprocess.check_output"),
    ("proto0_global.pkl", "os.system"), ("proto0_inst.pkl", "os.system"),
    ("obj.pkl", "os.system"), ("pkgutil.pkl", "pkgutil.resolve_name"),
    ("importlib.pkl", "importlib.import_module"), ("runpy.pkl", "runpy._run_code"),
    ("torch_hub.pt", "torch.hub.load"), ("dotted_stack_global.pkl", "torch.hub.load"),
    ("runstring.pkl", "numpy.testing._private.utils.runstring"),
    ("computed_global.pkl", "<computed>.system"), ("second_pickle.bin", "posix.system"),
    ("deflated_evil.pt", "posix.system"), ("legacy_evil.pt", "posix.system"),
    ("evil.joblib", "posix.system"), ("object_evil.npy", "posix.system"),
    ("evil/model.safetensors", "posix.system"), ("nested_evil.pt", "posix.system"),
    ("nested_opaque.pt", "torch.storage._load_from_bytes"), ("back_to_back.pkl", "posix.system"),
    ("odd_strings.pkl", "os.system"), ("attribute_chain.pkl", "torch.os.system"),
    ("binstring8.pkl", "posix.system"),
    ("dill_function.pkl", "dill._dill._create_function"), ("evil_tar.pt", "posix.system"),
    ("pop_lost_call.pkl", "posix.system"),
    ("nt_system.pt", "nt.system"), ("proto0_long/model.safetensors", "os.system"),
    ("proto0_broken/model.safetensors", "posix.system"), ("model", "posix.system"),
    ("operator_attrgetter.pkl", "operator.attrgetter"), ("nullifai.bin", "posix.system"),
    ("dunder_chain.pkl", "collections.OrderedDict.__init__.__globals__"),
    ("memo_across.pkl", "os.system"),
    ("memmap_write.pkl", "numpy.memmap"), ("unsuffixed_member.npz", "posix.system"), ("memmap_reconstructor.pkl", "numpy.memmap"),
])


def evil_cases() -> list[Case]:
    c = []
    add = _adder(c)
    add("os_system.pkl", EVIL_PKL, "critical", "posix.system through REDUCE")
    add("nt_system.pt", proto(2) + call(glob("nt", "system"), u("calc")) + STOP, "critical",
        "nt.system")
    add("exec.pkl", proto(4) + s("builtins") + s("exec") + STACK_GLOBAL + MARK + s("import os")
        + TUPLE + REDUCE + STOP, "critical", "builtins.exec by STACK_GLOBAL")
    add("eval_py2.pkl", b"c__builtin__\neval\n(S'1+1'\ntR.", "critical",
        "protocol-0 GLOBAL __builtin__.eval (mapped to builtins)")
    getattr_chain = (proto(2) + glob("builtins", "getattr") + MARK
                     + call(glob("builtins", "__import__"), u("os")) + u("system") + TUPLE + REDUCE
                     + MARK + u("id") + TUPLE + REDUCE + STOP)
    add("getattr_chain.pkl", getattr_chain, "critical", "getattr(__import__('os'), 'system')")
    memo = (proto(4) + s("os") + MEMOIZE + POP + s("system") + MEMOIZE + POP + s("innocent")
            + POP + binget(0) + binget(1) + STACK_GLOBAL + MARK + s("id") + TUPLE + REDUCE + STOP)
    add("memo_stack_global.pkl", memo, "critical", "STACK_GLOBAL from memoised strings")
    memo_put = (proto(4) + u("subprocess") + binput(7) + POP + u("check_output") + binput(3)
                + POP + binget(7) + binget(3) + STACK_GLOBAL + MARK + MARK + s("id") + b"l"
                + TUPLE + REDUCE + STOP)
    add("memo_binput.pkl", memo_put, "critical", "STACK_GLOBAL from BINPUT/BINGET strings")
    add("proto0_global.pkl", b"cos\nsystem\n(S'id'\ntR.", "critical", "protocol-0 GLOBAL")
    add("proto0_inst.pkl", b"(S'id'\nios\nsystem\n.", "critical", "protocol-0 INST")
    add("obj.pkl", proto(2) + MARK + glob("os", "system") + u("id") + b"o" + STOP, "critical",
        "OBJ calling os.system")
    add("pkgutil.pkl", proto(2) + call(glob("pkgutil", "resolve_name"), u("os:system")) + MARK
        + u("id") + TUPLE + REDUCE + STOP, "critical", "pkgutil.resolve_name('os:system')('id')")
    add("importlib.pkl", proto(2) + call(glob("importlib", "import_module"), u("os")) + STOP,
        "critical", "importlib.import_module")
    add("runpy.pkl", proto(2) + call(glob("runpy", "_run_code"), u("import os"), EMPTY_DICT)
        + STOP, "critical", "runpy._run_code")
    add("torch_hub.pt", proto(2) + call(glob("torch.hub", "load"), u("evil/repo"), u("m"))
        + STOP, "critical", "torch.hub.load")
    add("runstring.pkl", proto(2) + call(glob("numpy.testing._private.utils", "runstring"),
                                         u("import os"), EMPTY_DICT) + STOP, "critical",
        "numpy.testing._private.utils.runstring")
    add("dotted_stack_global.pkl", proto(4) + s("torch") + s("hub.load") + STACK_GLOBAL + MARK
        + s("x/y") + s("m") + TUPLE + REDUCE + STOP, "critical",
        "protocol-4 dotted name torch + hub.load")
    add("attribute_chain.pkl", proto(4) + s("torch") + s("os.system") + STACK_GLOBAL + MARK
        + s("id") + TUPLE + REDUCE + STOP, "critical",
        "protocol-4 attribute path into os through torch's namespace (torch.os.system)")
    add("dunder_chain.pkl", proto(4) + s("collections") + s("OrderedDict.__init__.__globals__")
        + STACK_GLOBAL + STOP, "critical", "a dunder attribute chain off an allowlisted class")
    rot13 = (proto(4) + call(glob("_codecs", "encode"), u("bf"), u("rot13")) + s("system")
             + STACK_GLOBAL + MARK + s("id") + TUPLE + REDUCE + STOP)
    add("computed_global.pkl", rot13, "critical",
        "STACK_GLOBAL whose module is computed at load time (_codecs.encode rot13 -> 'os')")
    add("operator_attrgetter.pkl", proto(2) + call(glob("operator", "attrgetter"), u("system"))
        + STOP, "critical", "operator.attrgetter")
    add("ext_code.pkl", proto(2) + b"\x82\x07" + MARK + TUPLE + REDUCE + STOP, "high",
        "EXT1 code 7: not in copyreg's registry")
    add("unknown_global.pkl", proto(2) + call(glob("mypackage.models", "Net")) + STOP, "high",
        "a global that is neither allowlisted nor dangerous")
    add("nullifai.bin", proto(2) + SYSTEM + b"\xff\xfe garbage", "critical",
        "payload first, then a broken stream (nullifAI): critical and not inspected")
    add("bad_opcode.pkl", proto(2) + glob("collections", "OrderedDict") + b"\x00" + STOP, "high",
        "unsupported opcode")
    add("no_stop.pkl", proto(2) + glob("collections", "OrderedDict") + MARK + TUPLE + REDUCE,
        "high", "stream ends before STOP")
    sd = state_dict(("Float",))
    clean = torch_zip(sd)
    # the 7z signature header over a (zlib-packed) PyTorch archive: the verdict is the magic's,
    # no 7z decoder is involved on either side
    add("nullifai/pytorch_model.bin", b"7z\xbc\xaf\x27\x1c\x00\x04" + zlib.compress(clean), "high",
        "a PyTorch archive wrapped in 7z (nullifAI)")
    add("gzip_model.pt", b"\x1f\x8b\x08\x00" + zlib.compress(EVIL_PKL), "high", "gzip-wrapped")
    add("second_pickle.bin", torch_zip(sd, extra_members=[("archive/extra.pkl", EVIL_PKL)]),
        "critical", "ZIP with a clean data.pkl and a second, evil .pkl")
    add("deflated_evil.pt", torch_zip(sd, extra_members=[("archive/x.pkl", EVIL_PKL)],
                                      deflate=("archive/x.pkl",)),
        "critical", "evil .pkl member compressed with deflate")
    add("local_name.bin", torch_zip(sd, local_name={"archive/data.pkl": "archive/data.pk_"}),
        "high", "ZIP local header names another file than the central directory")
    add("zip_named/model.safetensors",
        torch_zip(sd, local_name={"archive/data.pkl": "archive/data.pk_"}), "high",
        "a PyTorch ZIP named model.safetensors whose local header disagrees")
    add("local_flags.bin", torch_zip(sd, local_flags={"archive/data.pkl": 1}), "high",
        "ZIP local header flag bits differ from the central directory (CVE-2025-1945)")
    evil_sd = state_dict(("Float",))
    evil_sd["payload"] = _Reduce(os.system, "id")     # pickles as posix.system; never called
    add("legacy_evil.pt", torch_legacy(evil_sd), "critical",
        "legacy PyTorch layout with a payload in the object pickle")
    add("evil.joblib", joblib_estimator(_Reduce(os.system, "id")), "critical",
        "joblib estimator carrying a payload")
    add("object_evil.npy", npy(np.array([_Reduce(os.system, "id"), 1], dtype=object)),
        "critical", "object .npy whose pickle calls posix.system")
    add("evil/model.safetensors", EVIL_PKL, "critical", "a pickle named model.safetensors")
    add("model", EVIL_PKL, "critical", "a pickle without extension")
    add("proto0_long/model.safetensors", b"cos\nsystem\n(S'" + b"x" * 6000 + b"'\ntR.",
        "critical", "protocol-0 pickle named .safetensors, a 6 kB argument after the payload")
    add("proto0_broken/model.safetensors", b"cposix\nsystem\n(S'id'\ntR\xff\xfe", "critical",
        "protocol-0 pickle named .safetensors, payload then a broken stream")
    nested = proto(2) + call(glob("torch.storage", "_load_from_bytes"), binbytes(EVIL_PKL)) + STOP
    add("nested_evil.pt", nested, "critical", "torch.storage._load_from_bytes of an evil pickle")
    add("nested_opaque.pt", proto(2) + glob("torch.storage", "_load_from_bytes") + MARK
        + call(glob("builtins", "bytes"), u("x")) + TUPLE + REDUCE + STOP, "critical",
        "torch.storage._load_from_bytes of bytes computed at load time")
    add("back_to_back.pkl", pickle.dumps({"a": 1}, protocol=2) + EVIL_PKL, "critical",
        "a clean pickle then an evil one back to back")
    add("memo_across.pkl", proto(4) + s("os") + MEMOIZE + s("system") + MEMOIZE + b"N" + STOP
        + proto(4) + binget(0) + binget(1) + STACK_GLOBAL + STOP, "critical",
        "names memoised in one pickle, used by the next (one Unpickler keeps its memo)")
    # strings spelt oddly, then memoised in protocol 0 (PUT/GET) and fed to STACK_GLOBAL
    odd = (proto(4) + b"S'o\\x73'\np0\n0" + b"V\\u0073ystem\np1\n0" + b"g0\ng1\n"
           + STACK_GLOBAL + MARK + b"U\x02id" + TUPLE + REDUCE + STOP)
    add("odd_strings.pkl", odd, "critical",
        "STRING with an escape and raw-unicode-escape UNICODE, PUT/GET, then STACK_GLOBAL")
    add("binstring8.pkl", proto(4) + b"\x8d" + struct.pack("<Q", 5) + b"posix" + b"T"
        + struct.pack("<I", 6) + b"system" + STACK_GLOBAL + STOP, "critical",
        "BINUNICODE8 and BINSTRING names")
    add("dill_function.pkl", proto(4) + s("dill._dill") + s("_create_function") + STACK_GLOBAL
        + MARK + TUPLE + REDUCE + STOP, "critical", "a dill-serialised function")
    add("evil_tar.pt", _tar([("sys_info", pickle.dumps({"little_endian": True}, 2)),
                             ("pickle", EVIL_PKL)]), "critical",
        "the oldest PyTorch tar layout with a payload in its pickle")
    add("pop_lost_call.pkl", proto(2) + SYSTEM + POP + pickle.dumps(1, 2)[2:], "critical",
        "a call whose result is POPped before a clean value is returned")
    # only allowlisted names, yet a file write: numpy.memmap(path, 'uint8', 'r+') maps a file
    # read-write and SETITEM (PyObject_SetItem on a non-dict) writes bytes into it
    add("memmap_write.pkl", proto(2) + call(glob("numpy", "memmap"), u("/home/u/.bashrc"),
                                            u("uint8"), u("r+")) + call(glob("builtins", "slice"), b"K\x00", b"K\x04")
        + MARK + b"K\x68K\x61K\x63K\x6b" + b"l" + b"s" + STOP, "critical",
        "numpy.memmap called on a path, then SETITEM writes into the mapped file")
    add("unsuffixed_member.npz",
        zip_archive([("clean.npy", npy(np.arange(3))),
                     ("weights", npy(np.array([_Reduce(os.system, "id"), 1], dtype=object)))]),
        "critical", "an npz member named without .npy: np.load(f, allow_pickle=True)['weights'] still "
                    "reads it as an array by its magic bytes")
    add("memmap_reconstructor.pkl", proto(2) + call(glob("copyreg", "_reconstructor"),
                                                    glob("numpy", "memmap"), glob("numpy", "memmap"),
                                                    u("/home/u/.bashrc")) + STOP, "critical",
        "copyreg._reconstructor(memmap, memmap, path) calls memmap.__new__(memmap, path)")
    return c


def benign_cases() -> list[Case]:
    c = []
    add = _adder(c)
    add("pytorch_model.bin", torch_zip(state_dict(("Float", "Float", "Long")),
                                       stem="pytorch_model"), "medium",
        "float32/int64 state dict, PyTorch ZIP layout")
    add("fp16/pytorch_model.bin", torch_zip(state_dict(("Half", "BFloat16", "Bool"))), "medium",
        "float16/bfloat16/bool state dict")
    add("model.pt", torch_zip(state_dict(("Double", "Int", "Byte")), stem="model"), "medium",
        "float64/int32/uint8 state dict")
    add("legacy.pth", torch_legacy(state_dict(("Float", "Half"))), "medium",
        "legacy PyTorch layout (5 pickles then raw storages)")
    add("tar_layout.pt", torch_tar(state_dict(("Float",))), "medium", "oldest tar layout")
    add("training_args.bin", training_args_bin(), "medium", "Trainer training_args.bin")
    add("st/training_args.bin", sentence_transformers_training_args_bin(), "medium",
        "sentence-transformers' training_args.bin (its Trainer arguments subclass and enum)")
    add("rng_state.pth", rng_state_pth(), "medium", "Trainer rng_state.pth")
    add("fairseq.pt", torch_zip({"args": argparse.Namespace(arch="transformer", lr=[0.1]),
                                 "model": state_dict(("Float",))}), "medium",
        "fairseq checkpoint with argparse.Namespace")
    add("last.ckpt", lightning_ckpt(), "medium", "Lightning checkpoint with omegaconf hparams")
    inner = torch_zip(state_dict(("Float",)))
    add("storage_pickle.pt", proto(2) + call(glob("torch.storage", "_load_from_bytes"),
                                             binbytes(inner)) + STOP, "medium",
        "torch.storage._load_from_bytes of literal bytes that are a clean archive")
    add("model.joblib", joblib_estimator(), "medium", "joblib estimator with numpy arrays")
    add("array.npy", npy(np.arange(10, dtype=np.float32)), "none", "numeric .npy")
    add("objects.npy", npy(np.array([{"a": 1}, "text", 3], dtype=object)), "medium",
        "object .npy of plain values")
    add("arrays.npz", npz(a=np.ones((3, 3)), b=np.arange(4)), "none", "np.savez_compressed")
    add("objects.npz", npz(compressed=True, a=np.array([[1], "x"], dtype=object)), "medium",
        "np.savez_compressed with an object array")
    add("plain.pkl", pickle.dumps({"vocab": ["a", "b"], "n": 2}, protocol=4), "medium",
        "a plain pickle of builtins")
    add("proto0.pkl", pickle.dumps([1, "x", (2.5, None)], protocol=0), "medium",
        "protocol-0 pickle")
    add("numpy_objects.pkl", pickle.dumps({"mm": np.arange(3, dtype=np.uint8).view(np.memmap),
                                           "rng": np.random.default_rng(0),
                                           "ma": np.ma.masked_array([1, 2], [0, 1])}, protocol=4),
        "medium", "a pickled memmap (its class handed to _reconstruct), a Generator, a masked array")
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    header += b" " * (-len(header) % 8)
    add("model.safetensors", struct.pack("<Q", len(header)) + header + b"\0\0\0\0", "none",
        "a real safetensors file")
    add("model.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0), "none", "a GGUF file")
    add("tf_model.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "none",
        "Keras HDF5: listed as not inspected, no finding")
    return c


def all_cases() -> list[Case]:
    return evil_cases() + benign_cases()
