"""What a file is by its first bytes, and the containers pickles travel in (ZIP, tar, npy).

Pure parsing of bytes that came through a RangeReader: the ZIP end record and central directory
(ZIP64 too), each member's local header checked against its central entry (a disagreement is the
picklescan CVE-2025-1944 trick: refuse to inspect), member bytes decompressed under a cap, tar
headers, the `.npy` header. Nothing is extracted to disk or loaded.
"""

from __future__ import annotations

import ast
import pickletools
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from monitor.content.reader import RangeReader

MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"Rar!\x1a\x07", "rar"),
    (b"GGUF", "gguf"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"lmgg", "ggml"), (b"fmgg", "ggml"), (b"tjgg", "ggml"), (b"algg", "ggml"),
    (b"\x08\x01\x12", "onnx"),
)


class ContainerError(Exception):
    """The container cannot be read the way its loaders would read it."""


_OPCODES = frozenset(op.code.encode("latin-1") for op in pickletools.opcodes)


def _parses_to(head: bytes, most: int = 16) -> tuple[int, int, bool]:
    """(opcodes parsed, offset reached, STOP seen) before the first error in `head`; an opcode
    cut short by the end of `head` counts as reaching its end."""
    stream, count, reached = io.BytesIO(head), 0, 0
    try:
        for op, _arg, _pos in pickletools.genops(stream):
            count, reached = count + 1, stream.tell()
            if op.name == "STOP" or count >= most:
                return count, reached, op.name == "STOP"
    except (ValueError, UnicodeDecodeError, OverflowError, IndexError, KeyError):
        if count >= 2 and stream.tell() == len(head):
            reached = len(head)   # two whole opcodes, then one running past what was read
    return count, reached, False


def _imports_danger(head: bytes) -> bool:
    """Does a protocol-0/1 prefix import something dangerous (GLOBAL/INST) before it breaks?
    A broken stream still runs what came before the break (nullifAI)."""
    from monitor.content import allowlist
    from monitor.content.opcodes import _global_name

    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(head)):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str) and " " in arg:
                module, name = arg.split(" ", 1)
                if allowlist.judge(_global_name(module, name, 0)) in ("dangerous", "nested"):
                    return True
            if op.name == "STOP":
                return False
    except (ValueError, UnicodeDecodeError, OverflowError, IndexError, KeyError):
        pass
    return False


def looks_like_pickle(head: bytes, strict: bool = False, complete: bool = False) -> bool:
    """A pickle by its first opcodes: PROTO 0-5 followed by a valid opcode, or a protocol-0/1
    stream whose first three opcodes parse (text files fail within one or two). `strict` (a
    file not named as a pickle: LICENSE, NOTICE, …): a protocol-0/1 stream must reach STOP, or
    run to the end of `head` without an error when the file goes on (`complete`: `head` is the
    whole file), or import something dangerous before it breaks — which text does not."""
    if len(head) >= 3 and head[0] == 0x80 and head[1] <= 5 and head[2:3] in _OPCODES:
        return True
    if strict:
        _count, reached, stop = _parses_to(head, most=len(head) + 1)
        return stop or (reached == len(head) > 0 and not complete) or _imports_danger(head)
    count, _reached, stop = _parses_to(head)
    return stop or count >= 3


def looks_like_safetensors(head: bytes, size: int | None) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return size is None or n <= size - 8


def sniff(head: bytes, size: int | None, strict: bool = False) -> str:
    """What the first bytes say: zip, npy, tar, pickle, safetensors, gguf, hdf5, 7z, gzip, …,
    or unknown. A pickle wins over every other reading (its loader would take it)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"        # (its first bytes are also walked as a pickle: see pickles.py)
    if looks_like_safetensors(head, size) and _parses_to(head)[1] < 8:
        return "safetensors"     # its length prefix is no pickle past the first bytes
    if looks_like_pickle(head, strict, complete=size is not None and len(head) >= size):
        return "pickle"
    for magic, kind in MAGICS:
        if head.startswith(magic):
            return kind
    return "unknown"


# ----------------------------------------------------------------------------------- ZIP
_EOCD = struct.Struct("<4s4H2LH")          # 22 bytes
_EOCD64_LOC = struct.Struct("<4sLQL")      # 20 bytes
_EOCD64 = struct.Struct("<4sQ2H2L4Q")      # 56 bytes
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes
_LOCAL = struct.Struct("<4s2B4HL2L2H")     # 30 bytes
_TAIL = 65535 + _EOCD.size + _EOCD64_LOC.size
_LOCAL_SLACK = 1024                         # local extra fields read with the header
MAX_ZIP_ENTRIES = 65536


@dataclass(frozen=True)
class ZipMember:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def _zip64_extra(extra: bytes, want: list[str], values: dict[str, int]) -> None:
    """Fill the 0xFFFFFFFF fields listed in `want` from a ZIP64 extra field (in order)."""
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, i)
        body = extra[i + 4:i + 4 + length]
        if tag == 1:
            j = 0
            for key in want:
                if j + 8 > len(body):
                    raise ContainerError("ZIP64 extra field too short")
                values[key] = struct.unpack_from("<Q", body, j)[0]
                j += 8
            return
        i += 4 + length
    if want:
        raise ContainerError("ZIP64 sizes announced without a ZIP64 extra field")


def zip_directory(reader: RangeReader, size: int, header_cap: int) -> list[ZipMember]:
    """The central directory, found from the end record (as torch's and numpy's readers do)."""
    tail_at = max(0, size - _TAIL)
    tail = reader.read(tail_at, size - tail_at)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise ContainerError("no ZIP end record")
    _sig, disk, cd_disk, _n_disk, entries, cd_size, cd_offset, comment = _EOCD.unpack_from(tail, at)
    if at + _EOCD.size + comment != len(tail):
        raise ContainerError("ZIP end record does not end the file (comment length disagrees)")
    if disk or cd_disk:
        raise ContainerError("multi-disk ZIP")
    end_at = tail_at + at
    if 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        loc_at = at - _EOCD64_LOC.size
        if loc_at < 0 or tail[loc_at:loc_at + 4] != b"PK\x06\x07":
            raise ContainerError("ZIP64 locator missing")
        _s, _d, eocd64_at, _t = _EOCD64_LOC.unpack_from(tail, loc_at)
        rec = (tail[eocd64_at - tail_at:eocd64_at - tail_at + _EOCD64.size]
               if eocd64_at >= tail_at else reader.read(eocd64_at, _EOCD64.size))
        if len(rec) != _EOCD64.size or rec[:4] != b"PK\x06\x06":
            raise ContainerError("ZIP64 end record missing")
        fields = _EOCD64.unpack(rec)
        entries, cd_size, cd_offset = fields[7], fields[8], fields[9]
        end_at = eocd64_at
    if cd_offset + cd_size != end_at:
        raise ContainerError("ZIP central directory is not where the end record says "
                             "(data prepended or offsets shifted)")
    if cd_size > header_cap:
        raise ContainerError(f"ZIP central directory of {cd_size:,} bytes is over the cap")
    cd = (tail[cd_offset - tail_at:cd_offset - tail_at + cd_size] if cd_offset >= tail_at
          else reader.read(cd_offset, cd_size))
    if len(cd) != cd_size:
        raise ContainerError("ZIP central directory truncated")
    if entries > MAX_ZIP_ENTRIES:
        raise ContainerError(f"ZIP of {entries:,} entries (more than {MAX_ZIP_ENTRIES:,})")
    members, i = [], 0
    for _ in range(entries):
        if i + _CENTRAL.size > len(cd) or cd[i:i + 4] != b"PK\x01\x02":
            raise ContainerError("ZIP central directory entry malformed")
        f = _CENTRAL.unpack_from(cd, i)
        flags, method, crc, csize, usize = f[5], f[6], f[9], f[10], f[11]
        n, m, k, offset = f[12], f[13], f[14], f[18]
        raw = cd[i + _CENTRAL.size:i + _CENTRAL.size + n]
        extra = cd[i + _CENTRAL.size + n:i + _CENTRAL.size + n + m]
        values = {"size": usize, "compressed": csize, "offset": offset}
        _zip64_extra(extra, [k_ for k_ in ("size", "compressed", "offset")
                             if values[k_] == 0xFFFFFFFF], values)
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        members.append(ZipMember(name, raw, flags, method, crc, values["compressed"],
                                 values["size"], values["offset"]))
        i += _CENTRAL.size + n + m + k
    if i != len(cd):
        raise ContainerError("ZIP central directory holds more than its entries")
    return members


def zip_member_bytes(reader: RangeReader, m: ZipMember, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a member's content (decompressed), and whether there is more.
    Refuses a member whose local header disagrees with its central entry."""
    if m.method not in (0, 8):
        raise ContainerError(f"{m.name}: compression method {m.method} not supported")
    first = min(m.compressed, limit + 1) if m.method == 0 else min(m.compressed, 256 * 1024)
    head = reader.read(m.offset, _LOCAL.size + len(m.raw_name) + _LOCAL_SLACK + first)
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        raise ContainerError(f"{m.name}: no local header where the central directory points")
    f = _LOCAL.unpack_from(head)
    flags, method, crc, csize, usize, n, e = f[3], f[4], f[7], f[8], f[9], f[10], f[11]
    raw = head[_LOCAL.size:_LOCAL.size + n]
    extra_at = _LOCAL.size + n
    if len(head) < extra_at + e:
        head += reader.read(m.offset + len(head), extra_at + e - len(head) + first)
    extra = head[extra_at:extra_at + e]
    values = {"size": usize, "compressed": csize}
    if not flags & 0x08:
        _zip64_extra(extra, [k for k in ("size", "compressed") if values[k] == 0xFFFFFFFF], values)
    disagree = []
    if raw != m.raw_name:
        disagree.append(f"name {raw!r}")
    if method != m.method:
        disagree.append(f"method {method} vs {m.method}")
    if flags != m.flags:
        disagree.append(f"flags {flags:#x} vs {m.flags:#x}")
    local_sizes = (values["size"], values["compressed"], crc)
    if not flags & 0x08 and local_sizes != (m.size, m.compressed, m.crc):
        disagree.append("sizes or CRC")
    if disagree:
        raise ContainerError(f"ZIP local header of {m.name} disagrees with the central directory "
                             f"({', '.join(disagree)})")
    data_at = m.offset + extra_at + e
    body = head[extra_at + e:]
    if m.method == 0:
        want = min(m.compressed, limit + 1)
        if len(body) < want:
            body += reader.read(data_at + len(body), want - len(body))
        body = body[:want]
        return body[:limit], m.compressed > limit
    # deflate: feed compressed chunks until `limit` + 1 bytes came out or the member ends
    inflater = zlib.decompressobj(-15)
    out, fed = bytearray(), 0
    chunk = body[:m.compressed]
    while True:
        fed += len(chunk)
        try:
            out += inflater.decompress(inflater.unconsumed_tail + chunk, limit + 1 - len(out))
        except zlib.error as exc:
            raise ContainerError(f"{m.name}: deflate stream broken ({exc})") from exc
        if len(out) > limit:
            return bytes(out[:limit]), True
        if inflater.eof or fed >= m.compressed:
            return bytes(out), False
        chunk = reader.read(data_at + fed, min(m.compressed - fed, 1024 * 1024))
        if not chunk:
            raise ContainerError(f"{m.name}: member truncated")


# ----------------------------------------------------------------------------------- npy
@dataclass(frozen=True)
class NpyHeader:
    data_offset: int
    has_object: bool
    descr: str


def npy_header(head: bytes) -> NpyHeader:
    """Parse the `.npy` header dict (a Python literal, read with ast.literal_eval as numpy does)."""
    import numpy

    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        raise ContainerError("not an npy header")
    major = head[6]
    if major == 1:
        (hlen,), start = struct.unpack_from("<H", head, 8), 10
    elif major in (2, 3):
        if len(head) < 12:
            raise ContainerError("npy header truncated")
        (hlen,), start = struct.unpack_from("<L", head, 8), 12
    else:
        raise ContainerError(f"npy format version {major} unknown")
    if start + hlen > len(head):
        raise ContainerError(f"npy header of {hlen:,} bytes is longer than what was read")
    text = head[start:start + hlen].decode("utf-8" if major == 3 else "latin-1")
    try:
        info = ast.literal_eval(text)
        descr = info["descr"]
        dtype = numpy.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as exc:
        raise ContainerError(f"npy header does not parse ({type(exc).__name__})") from exc
    return NpyHeader(start + hlen, bool(dtype.hasobject), str(descr)[:80])


# ----------------------------------------------------------------------------------- tar
@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int     # of the content
    size: int


def _tar_number(field: bytes) -> int:
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def tar_members(read: Callable[[int, int], bytes], size: int | None,
                max_members: int) -> list[TarMember]:
    """Walk the 512-byte headers (PAX and GNU long names honoured for the member's name)."""
    members, pos, long_name = [], 0, None
    for _ in range(max_members * 2 + 2):
        block = read(pos, 512)
        if len(block) < 512 or block == b"\0" * 512:
            return members
        try:
            length = _tar_number(block[124:136])
        except ValueError as exc:
            raise ContainerError("tar header with a bad size") from exc
        kind = block[156:157]
        name = block[:100].split(b"\0", 1)[0]
        if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        content = pos + 512
        if kind in (b"x", b"L"):
            meta = read(content, min(length, 64 * 1024))
            if kind == b"L":
                long_name = meta.split(b"\0", 1)[0]
            else:
                for line in meta.split(b"\n"):
                    if b" path=" in line:
                        long_name = line.split(b" path=", 1)[1]
        elif kind in (b"0", b"\0", b"7"):
            shown = (long_name or name).decode("utf-8", "replace")
            members.append(TarMember(shown, content, length))
            long_name = None
            if len(members) > max_members:
                raise ContainerError(f"tar holds more than {max_members} members")
        else:
            long_name = None
        pos = content + (length + 511) // 512 * 512
        if size is not None and pos > size:
            raise ContainerError("tar member runs past the end of the file")
    raise ContainerError(f"tar holds more than {max_members} headers")
