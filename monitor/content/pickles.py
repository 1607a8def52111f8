"""The pickle verdict on one file: what would loading it import, and is all of it known safe?

`inspect_file(reader)` reads a file by ranges (never whole), finds the pickle streams in it by
its magic bytes — PyTorch ZIP archives (every `*.pkl` member), the legacy PyTorch layout (five
pickles back to back, then raw storages), the oldest tar layout, plain pickle / joblib / dill
streams, `.npy`/`.npz` with an object dtype — walks each stream's opcodes (opcodes.py; never
`pickle.load`) and judges every imported `module.name` against allowlist.py.

It fails closed: an unknown container, a stream that does not reach STOP, an unsupported opcode,
a member over the cap, a ZIP whose local headers disagree with its central directory → the
verdict says what was not inspected; names seen before the break are still judged (nullifAI:
payload first, then a broken stream → critical *and* not inspected).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from monitor.content import allowlist
from monitor.content.containers import (
    ContainerError, npy_header, sniff, tar_members, zip_directory, zip_member_bytes)
from monitor.content.opcodes import Findings, Global, OverCap, Walker, WalkError
from monitor.content.reader import BytesReader, ContentCaps, ContentReadError, RangeReader

PICKLE_EXTENSIONS: tuple[str, ...] = (
    ".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
# Weight-named files that are sniffed: inspected when their first bytes say pickle or ZIP.
SNIFF_EXTENSIONS: tuple[str, ...] = (".safetensors", ".gguf", ".h5", ".keras")

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C   # torch.serialization.MAGIC_NUMBER, the legacy layout
_HEAD = 4096
_BLOCK = 64 * 1024
_MAX_STREAMS = 64          # pickles back to back in one stream region
_MAX_NESTED = 16           # nested pickles (torch.storage._load_from_bytes) inspected per file
_MAX_DEPTH = 2
_TAR_RECORDS = 4096        # storages / tensors records in the oldest layout
_NOTHING_TO_JUDGE = ("safetensors", "gguf", "ggml", "onnx")
_PICKLE_CARRIERS = ("zip", "tar", "pickle", "legacy", "npy", "npz")
_STORAGE_BYTES = {
    "Double": 8, "Float": 4, "Half": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1, "Byte": 1,
    "Bool": 1, "BFloat16": 2, "ComplexDouble": 16, "ComplexFloat": 8, "QUInt8": 1, "QInt8": 1,
    "QInt32": 4,
}


def _extension(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else ""


def wants_inspection(path: str) -> bool:
    """Pickle-family by extension, or weight-named (.safetensors .gguf .h5 .keras, or no
    extension) and to be sniffed. Dotfiles (.gitattributes) are not weights."""
    base = path.rsplit("/", 1)[-1]
    if not base or base.startswith("."):
        return False
    ext = _extension(path)
    return ext in PICKLE_EXTENSIONS or ext in SNIFF_EXTENSIONS or ext == ""


@dataclass(frozen=True)
class PickleVerdict:
    path: str
    container: str
    imports: tuple[str, ...]
    dangerous: tuple[str, ...]
    unknown: tuple[str, ...]
    not_inspected: str | None
    bytes_read: int

    pickle_streams: bool = False     # a pickle stream was found (added to the agreed API)
    read_error: str | None = None    # "transient" | "permanent" when a read failed (a later try
                                     # may succeed for "transient": retry rather than alert)

    @property
    def evidence_only(self) -> bool:
        """Listed in evidence as not inspected, no finding by itself: a Keras/HDF5 file without
        pickles, or a weight-named file (not pickle-family by extension) in which no pickle was
        found, e.g. because its first bytes could not be read."""
        if self.pickle_streams or self.imports:
            return False
        if self.container == "keras":
            return True
        # a ZIP, tar or pickle named as weights that could not be read through is a finding
        return (_extension(self.path) not in PICKLE_EXTENSIONS
                and self.container not in _PICKLE_CARRIERS)

    @property
    def is_pickle(self) -> bool:
        """A pickle stream was found (the change stays pickle_file_changed)."""
        return self.pickle_streams

    @property
    def severity(self) -> str:
        if self.dangerous:
            return "critical"
        if self.unknown or (self.not_inspected and not self.evidence_only):
            return "high"
        return "medium" if self.pickle_streams else "none"


def _npy_header_end(head: bytes) -> int:
    """Where an npy header ends, from its fixed prefix (version 1: 2-byte length, 2/3: 4)."""
    if len(head) >= 10 and head[6] == 1:
        return 10 + struct.unpack_from("<H", head, 8)[0]
    if len(head) >= 12 and head[6] in (2, 3):
        return 12 + struct.unpack_from("<L", head, 8)[0]
    return len(head)


class _Source:
    """Ranged reads of a region of the file (the whole file, or one tar member), with the last
    block kept so small reads next to each other cost one request."""

    def __init__(self, read: Callable[[int, int], bytes], start: int, size: int | None):
        self._read, self.start, self.size = read, start, size
        self._at, self._block = -1, b""

    def seed(self, offset: int, block: bytes) -> None:
        self._at, self._block = offset, block

    def fetch(self, offset: int, length: int) -> bytes:
        if self.size is not None:
            length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        if self._at <= offset and offset + length <= self._at + len(self._block):
            i = offset - self._at
            return self._block[i:i + length]
        want = max(length, _BLOCK)
        if self.size is not None:
            want = min(want, self.size - offset)
        self._block, self._at = self._read(self.start + offset, want), offset
        return self._block[:length]

    def window(self, offset: int, length: int) -> bytes:
        """Like fetch, but what the kept block holds from `offset` is enough (the walker reads on
        when it needs more)."""
        if self._at <= offset < self._at + len(self._block):
            i = offset - self._at
            return self._block[i:i + length]
        return self.fetch(offset, length)


class _Inspection:
    def __init__(self, reader: RangeReader, caps: ContentCaps, depth: int = 0):
        self.reader, self.caps, self.depth = reader, caps, depth
        self.f = Findings()
        self.reasons: dict[str, None] = {}
        self.streams = False
        self.container = "unknown"
        self.extra_dangerous: dict[str, None] = {}
        self.extra_unknown: dict[str, None] = {}
        self.nested_ok: set[str] = set()
        self.read_error: str | None = None

    def reason(self, text: str) -> None:
        self.reasons.setdefault(text[:300], None)

    # -- the file -----------------------------------------------------------------------
    def run(self) -> None:
        size = self.reader.size
        head = self.reader.read(0, _HEAD)
        pickle_named = _extension(self.reader.path) in PICKLE_EXTENSIONS
        kind = sniff(head, size, strict=not pickle_named and not self.depth)
        self.container = kind
        whole = _Source(self.reader.read, 0, size)
        whole.seed(0, head)
        if kind == "zip":
            self._zip(size)
        elif kind == "npy":
            self._npy(whole, self.reader.path)
        elif kind == "pickle":
            self._streams_from(whole, 0, self.reader.path, legacy_ok=True)
        elif kind == "tar":
            self._tar(size, head)
        elif kind == "hdf5":
            self.container = "keras"
            self.reason("Keras/HDF5 file: not inspected (Lambda layers can carry code)")
        elif kind in _NOTHING_TO_JUDGE:
            pass
        elif pickle_named or self.depth:
            self.reason(f"{kind} container: not inspected (neither ZIP, tar, pickle nor npy "
                        f"by its first bytes {head[:8].hex()})")

    def _streams_from(self, src: _Source, start: int, label: str, *, legacy_ok: bool = False,
                      truncated: bool = False, count_max: int = _MAX_STREAMS) -> None:
        """Pickles back to back from `start` to the end of the region (or 5 for legacy)."""
        pos, budget, count = start, self.caps.pickle_bytes, 0
        memo: dict[int, object] = {}   # shared: a reader may load() them with one Unpickler
        while True:
            walker = Walker(src.fetch, src.size, budget, self.f, window=src.window, memo=memo)
            try:
                end, value = walker.walk(pos)
            except WalkError as exc:
                if count == 0 or walker.parsed:
                    self.streams = True
                if truncated or isinstance(exc, OverCap):
                    self.reason(f"{label}: over the {self.caps.pickle_bytes:,}-byte cap")
                elif count == 0:
                    self.reason(f"{label}: {exc}")
                else:
                    self.reason(f"{label}: bytes after pickle {count} do not parse ({exc})")
                return
            self.streams = True
            budget -= walker.parsed
            count += 1
            if count == 1 and legacy_ok and value == LEGACY_MAGIC and type(value) is int:
                count_max = 5
                self.container = "legacy"
            pos = end
            if count >= count_max:   # legacy: raw storages follow; npy: numpy reads one pickle
                if count_max == _MAX_STREAMS and (src.size is None or pos < src.size):
                    self.reason(f"{label}: more than {count_max} pickles back to back")
                return
            if src.size is not None and pos >= src.size:
                if truncated:
                    self.reason(f"{label}: over the {self.caps.pickle_bytes:,}-byte cap")
                return

    def _npy(self, src: _Source, label: str) -> None:
        head = src.fetch(0, _HEAD)
        try:
            need = _npy_header_end(head)
            if need > self.caps.pickle_bytes:
                raise ContainerError(f"npy header of {need:,} bytes is over the cap")
            if need > len(head):
                head = src.fetch(0, need)
            header = npy_header(head)
        except ContainerError as exc:
            self.reason(f"{label}: {exc}")
            return
        if header.has_object:
            self._streams_from(src, header.data_offset, label, count_max=1)

    def _zip(self, size: int | None) -> None:
        if size is None:
            self.reason("ZIP of unknown size: not inspected")
            return
        try:
            members = zip_directory(self.reader, size, self.caps.header_bytes)
        except ContainerError as exc:
            self.reason(str(exc))
            return
        pickles = [m for m in members if m.name.lower().endswith(".pkl")]
        arrays = [m for m in members if m.name.lower().endswith(".npy")]
        names = {m.name.rsplit("/", 1)[-1] for m in members}
        if _extension(self.reader.path) == ".keras" or {"config.json", "model.weights.h5"} <= names:
            self.container = "keras"
            if not pickles and not arrays:
                self.reason("Keras archive: not inspected (Lambda layers can carry code)")
        elif arrays and not pickles:
            self.container = "npz"
        # numpy.load reads any member whose bytes start with the npy magic as an array, whatever
        # its name (np.load(f, allow_pickle=True)["weights"]): sniffed unless a torch archive
        others = [] if pickles or self.container == "keras" else [
            m for m in members if not m.name.lower().endswith(".npy") and not m.name.endswith("/")]
        targets = pickles + arrays + others
        if len(targets) > self.caps.members:
            self.reason(f"{len(targets) - self.caps.members} of {len(targets)} pickle/npy "
                        f"members over the cap of {self.caps.members}")
            targets = targets[:self.caps.members]
        cap = self.caps.pickle_bytes
        for m in targets:
            try:
                if m.name.lower().endswith(".pkl"):
                    data, more = zip_member_bytes(self.reader, m, cap)
                    self._streams_from(_Source(BytesReader(data).read, 0, len(data)), 0, m.name,
                                       truncated=more)
                else:
                    data, _ = zip_member_bytes(self.reader, m, _HEAD)
                    if not m.name.lower().endswith(".npy"):
                        if not data.startswith(b"\x93NUMPY"):
                            continue   # numpy hands these back as bytes
                        self.container = "npz"
                    need = _npy_header_end(data)
                    if need > len(data):
                        data, _ = zip_member_bytes(self.reader, m, min(need, cap))
                    header = npy_header(data)
                    if header.has_object:
                        data, more = zip_member_bytes(self.reader, m, header.data_offset + cap)
                        self._streams_from(_Source(BytesReader(data).read, 0, len(data)),
                                           header.data_offset, m.name, truncated=more, count_max=1)
            except ContainerError as exc:
                self.reason(str(exc))

    # -- the oldest PyTorch layout: a tar of sys_info, pickle, storages, tensors ----------
    def _tar(self, size: int | None, head: bytes) -> None:
        from monitor.content.containers import looks_like_pickle

        if looks_like_pickle(head):
            # a loader taking it for a pickle would run what its first opcodes import
            scratch = Walker(_Source(self.reader.read, 0, size).fetch, size,
                             self.caps.pickle_bytes, self.f)
            try:
                scratch.walk(0)
            except WalkError:
                pass
        try:
            members = tar_members(_Source(self.reader.read, 0, size).fetch, size,
                                  self.caps.tar_members)
        except ContainerError as exc:
            self.reason(str(exc))
            return
        for m in members:
            src = _Source(self.reader.read, m.offset, m.size)
            base = m.name.rsplit("/", 1)[-1]
            try:
                if base == "storages":
                    self._tar_records(src, m.name, storages=True)
                elif base == "tensors":
                    self._tar_records(src, m.name, storages=False)
                elif sniff(src.fetch(0, _HEAD), m.size) == "pickle":
                    self._streams_from(src, 0, m.name)
            except (WalkError, ContainerError) as exc:
                self.reason(f"{m.name}: {exc}")

    def _tar_records(self, src: _Source, label: str, *, storages: bool) -> None:
        budget = self.caps.pickle_bytes

        def one(pos: int) -> tuple[int, object]:
            nonlocal budget
            walker = Walker(src.fetch, src.size, budget, self.f, window=src.window)
            try:
                return walker.walk(pos)
            finally:
                self.streams = True
                budget -= walker.parsed

        pos, count = one(0)
        if not isinstance(count, int) or not 0 <= count <= _TAR_RECORDS:
            raise ContainerError(f"record count of {type(count).__name__} not understood")
        for _ in range(count):
            pos, args = one(pos)
            if storages:
                kind = args[2] if isinstance(args, tuple) and len(args) == 3 else None
                name = kind.name if isinstance(kind, Global) else ""
                width = _STORAGE_BYTES.get(name.removeprefix("torch.").removesuffix("Storage"))
                raw = src.fetch(pos, 8)
                if width is None or len(raw) != 8:
                    raise ContainerError(f"storage record of {type(args).__name__} not understood")
                pos += 8 + int.from_bytes(raw, "little", signed=True) * width
            else:
                raw = src.fetch(pos, 4)
                if len(raw) != 4:
                    raise ContainerError("tensor record truncated")
                ndim = int.from_bytes(raw, "little", signed=True)
                if not 0 <= ndim <= 64:
                    raise ContainerError(f"tensor record with {ndim} dimensions")
                pos += 8 + 16 * ndim + 8
        if storages:
            one(pos)   # the storage views

    # -- nested pickles and the verdict ---------------------------------------------------
    def nested(self) -> None:
        """Literal bytes given to torch.storage._load_from_bytes are a file of their own."""
        for loader, data in self.f.nested_bytes[:_MAX_NESTED]:
            if self.depth >= _MAX_DEPTH:
                return
            sub = _inspect(BytesReader(data, f"{self.reader.path}:{loader}"), self.caps,
                           self.depth + 1)
            for name in sub.imports:
                self.f.add(name)
            self.extra_dangerous.update(dict.fromkeys(sub.dangerous))
            self.extra_unknown.update(dict.fromkeys(sub.unknown))
            if sub.not_inspected:
                self.reason(f"bytes given to {loader}: {sub.not_inspected}")
        if len(self.f.nested_bytes) <= _MAX_NESTED and self.depth < _MAX_DEPTH:
            self.nested_ok = {loader for loader, _ in self.f.nested_bytes}
        elif self.f.nested_bytes:
            self.reason(f"more than {_MAX_NESTED} nested pickles")

    def verdict(self) -> PickleVerdict:
        dangerous, unknown = [], []
        for name in self.f.imports:
            judged = allowlist.judge(name)
            if name in self.f.forced or name in self.extra_dangerous or judged == "dangerous":
                dangerous.append(name)
            elif judged == "nested":
                if name in self.f.nested_unresolved or name not in self.nested_ok:
                    dangerous.append(name)
            elif name in self.extra_unknown or judged == "unknown":
                unknown.append(name)
        verdict = PickleVerdict(
            path=self.reader.path, container=self.container, imports=tuple(self.f.imports),
            dangerous=tuple(dangerous), unknown=tuple(unknown),
            not_inspected="; ".join(self.reasons) or None, bytes_read=self.reader.bytes_read,
            pickle_streams=self.streams, read_error=self.read_error)
        return verdict


def _inspect(reader: RangeReader, caps: ContentCaps, depth: int) -> PickleVerdict:
    ins = _Inspection(reader, caps, depth)
    try:
        ins.run()
    except ContentReadError as exc:
        ins.read_error = "permanent" if exc.permanent else "transient"
        ins.reason(f"read failed ({ins.read_error}): {exc}")
    except (ContainerError, WalkError) as exc:
        ins.reason(str(exc))
    except (RecursionError, MemoryError) as exc:
        ins.reason(f"not inspected: {type(exc).__name__}")
    except Exception as exc:  # noqa: BLE001 - fail closed on what we did not foresee
        ins.reason(f"internal error while inspecting: {type(exc).__name__}")
    ins.nested()
    return ins.verdict()


def inspect_file(reader: RangeReader, caps: ContentCaps = ContentCaps()) -> PickleVerdict:
    """The verdict on one file. Never raises for file content; a read error becomes
    `not_inspected` ("read failed (transient|permanent): …"). Only reader.read() does I/O."""
    return _inspect(reader, caps, 0)
