"""GGUF header reader: the chat templates a `.gguf` file carries, read by ranged reads.

A GGUF file starts with the magic `GGUF`, a uint32 version, the tensor count and the key-value
count (uint64 each since v2), then the key-value section, then the tensor infos and the tensor
data. v3 files may be big-endian: every number is then big-endian (the magic bytes are not), so
the version field tells the byte order (read little-endian, a big-endian 3 is 0x03000000).

The templates (`tokenizer.chat_template`, `tokenizer.chat_template.<name>`, and the list of names
`tokenizer.chat_templates`) come after the tokenizer's arrays (`tokenizer.ggml.tokens`, scores,
merges: megabytes for a large vocabulary). The reader streams the key-value section in growing
chunks (64 KiB, doubling up to 4 MiB), keeps only the template strings, skips every other value by
its length (numeric arrays by arithmetic; string arrays by walking their length prefixes, one
buffered chunk at a time, never holding the strings), and stops after the last key: the tensor
infos and data are never read.

Hostile headers are bounded by `ContentCaps.header_bytes`: nothing past that offset is read, so a
count or a length that would run past it, an unknown value type, a duplicate key, a file that ends
inside the section, or an unsupported version makes a header with `not_inspected` saying why —
never an exception, never more memory than one chunk plus the templates kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from monitor.content.reader import ContentCaps, ContentReadError, RangeReader

MAGIC = b"GGUF"
FIRST_CHUNK = 64 * 1024
MAX_CHUNK = 4 * 1024 * 1024
MAX_KEY_BYTES = 65_535      # the spec's limit on a key's length
MAX_ARRAY_DEPTH = 3         # arrays of arrays of arrays; deeper is refused
MAX_TEMPLATE_NAMES = 1024

TEMPLATE_KEY = "tokenizer.chat_template"
TEMPLATE_PREFIX = "tokenizer.chat_template."
TEMPLATE_NAMES_KEY = "tokenizer.chat_templates"

# value types of the spec
STRING, ARRAY = 8, 9
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_MIN_SIZE = {**_FIXED, STRING: 8, ARRAY: 12}


@dataclass(frozen=True)
class GgufHeader:
    version: int
    endian: str                   # "little" | "big" ("" when not a GGUF at all)
    templates: dict[str, str]     # tokenizer.chat_template -> "default", tokenizer.chat_template.<name> -> name
    metadata_keys: int            # keys read (all of them when not_inspected is None)
    bytes_read: int
    not_inspected: str | None
    requests: int = 0             # reader.read() calls made
    template_names: tuple[str, ...] = field(default=())   # tokenizer.chat_templates, as listed
    read_error_permanent: bool | None = None              # set when a read failed (ContentReadError)


class _Bad(Exception):
    """The header cannot be inspected; the message says why (one line)."""


class _Stream:
    """Sequential reads over a RangeReader, buffered in growing chunks, never past `cap`."""

    def __init__(self, reader: RangeReader, cap: int):
        self.reader, self.cap = reader, cap
        self.buf, self.base, self.pos = b"", 0, 0
        self.chunk, self.requests = FIRST_CHUNK, 0
        size = reader.size
        self.limit = cap if size is None else min(cap, size)

    def ensure(self, n: int) -> int:
        """Make bytes [pos, pos+n) available; returns their offset in self.buf."""
        end = self.pos + n
        if end > self.limit:
            if self.limit < self.cap:
                raise _Bad(f"file ends inside the key-value section (at byte {self.limit:,})")
            raise _Bad(f"key-value section runs past the {self.cap:,}-byte header cap")
        have = self.base + len(self.buf)
        if self.base <= self.pos and end <= have:
            return self.pos - self.base
        if self.base <= self.pos <= have:
            self.buf = self.buf[self.pos - self.base:]
        else:
            self.buf = b""
        self.base = self.pos
        parts = [self.buf]
        at = self.base + len(self.buf)
        while at < end:
            want = min(max(self.chunk, end - at), self.limit - at)
            data = self.reader.read(at, want)
            self.requests += 1
            self.chunk = min(self.chunk * 2, MAX_CHUNK)
            if not data:
                raise _Bad(f"file ends inside the key-value section (at byte {at:,})")
            if len(data) > want:
                data = data[:want]
            parts.append(data)
            at += len(data)
        self.buf = b"".join(parts)
        return 0

    def edge(self) -> str:
        """What a length that does not fit runs past: the file's end or the cap."""
        if self.limit < self.cap:
            return f"the end of the file ({self.limit:,} bytes)"
        return f"the {self.cap:,}-byte header cap"

    def take(self, n: int) -> bytes:
        off = self.ensure(n)
        self.pos += n
        return self.buf[off:off + n]

    def skip(self, n: int) -> None:
        if self.pos + n > self.limit:
            self.ensure(n)  # raises with the right reason
        self.pos += n


class _Parser:
    def __init__(self, stream: _Stream, endian: str):
        self.s = stream
        p = "<" if endian == "little" else ">"
        self.u32, self.u64 = struct.Struct(p + "I"), struct.Struct(p + "Q")

    def uint32(self) -> int:
        off = self.s.ensure(4)
        self.s.pos += 4
        return self.u32.unpack_from(self.s.buf, off)[0]

    def uint64(self) -> int:
        off = self.s.ensure(8)
        self.s.pos += 8
        return self.u64.unpack_from(self.s.buf, off)[0]

    def room(self) -> int:
        return self.s.limit - self.s.pos

    def string_length(self, what: str) -> int:
        n = self.uint64()
        if n > self.room():
            raise _Bad(f"{what}: a string of {n:,} bytes runs past {self.s.edge()}")
        return n

    def text(self, what: str, limit: int | None = None) -> str:
        n = self.string_length(what)
        if limit is not None and n > limit:
            raise _Bad(f"{what}: {n:,} bytes, more than {limit:,}")
        data = self.s.take(n)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Bad(f"{what}: not valid UTF-8") from None

    def skip_value(self, vtype: int, key: str, depth: int = 0) -> None:
        if vtype in _FIXED:
            self.s.skip(_FIXED[vtype])
        elif vtype == STRING:
            self.s.skip(self.string_length(key))
        elif vtype == ARRAY:
            self.skip_array(key, depth + 1)
        else:
            raise _Bad(f"{key}: unknown value type {vtype}")

    def array_head(self, key: str, depth: int) -> tuple[int, int]:
        if depth > MAX_ARRAY_DEPTH:
            raise _Bad(f"{key}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
        etype = self.uint32()
        count = self.uint64()
        if etype not in _MIN_SIZE:
            raise _Bad(f"{key}: array of unknown value type {etype}")
        if count and count > self.room() // _MIN_SIZE[etype]:
            raise _Bad(f"{key}: an array of {count:,} elements runs past {self.s.edge()}")
        return etype, count

    def skip_array(self, key: str, depth: int) -> None:
        etype, count = self.array_head(key, depth)
        if etype in _FIXED:
            self.s.skip(count * _FIXED[etype])
        elif etype == STRING:
            self.skip_strings(count, key)
        else:
            for _ in range(count):
                self.skip_array(key, depth + 1)

    def skip_strings(self, count: int, key: str) -> None:
        """Walk `count` length-prefixed strings chunk by chunk without holding them."""
        s, unpack = self.s, self.u64.unpack_from
        while count:
            off = s.ensure(8)
            buf, end, left = s.buf, len(s.buf) - 8, count
            while left and off <= end:   # the hot loop: one length prefix per string
                off += 8 + unpack(buf, off)[0]
                left -= 1
            count = left
            s.pos = s.base + off
            if s.pos > s.limit:          # a length ran past the buffer, and past the cap or the file
                raise _Bad(f"{key}: a string runs past {s.edge()}")

    def strings(self, key: str, depth: int) -> list[str]:
        etype, count = self.array_head(key, depth)
        if etype != STRING:
            raise _Bad(f"{key}: not an array of strings")
        if count > MAX_TEMPLATE_NAMES:
            raise _Bad(f"{key}: {count:,} names, more than {MAX_TEMPLATE_NAMES:,}")
        return [self.text(key, MAX_KEY_BYTES) for _ in range(count)]


def _version_and_endian(head: bytes) -> tuple[int, str]:
    little = struct.unpack_from("<I", head, 4)[0]
    if little in (1, 2, 3):
        return little, "little"
    big = struct.unpack_from(">I", head, 4)[0]
    if big in (1, 2, 3):
        return big, "big"
    return little, ""


def read_gguf_header(reader: RangeReader, caps: ContentCaps = ContentCaps()) -> GgufHeader:
    """The templates of a GGUF file, read from its key-value section; never raises for content."""
    start = reader.bytes_read
    stream = _Stream(reader, caps.header_bytes)
    version, endian, keys = 0, "", 0
    templates: dict[str, str] = {}
    names: tuple[str, ...] = ()
    reason: str | None = None
    permanent: bool | None = None
    try:
        if reader.size is not None and reader.size < 24:
            raise _Bad(f"not a GGUF file ({reader.size} bytes)")
        head = stream.take(24)
        if head[:4] != MAGIC:
            raise _Bad(f"not a GGUF file (first bytes {head[:4]!r})")
        version, endian = _version_and_endian(head)
        if not endian:
            raise _Bad(f"unsupported GGUF version {version}")
        if version == 1:
            raise _Bad("GGUF version 1 (32-bit counts) is not supported")
        parser = _Parser(stream, endian)
        stream.pos = 8
        parser.uint64()  # tensor count: the tensor infos are never read
        count = parser.uint64()
        if count > parser.room() // 13:   # the smallest pair: empty key, type, one byte
            raise _Bad(f"{count:,} key-value pairs cannot fit before {stream.edge()}")
        seen: set[str] = set()
        for _ in range(count):
            key = parser.text("a key", MAX_KEY_BYTES)
            if key in seen:
                raise _Bad(f"duplicate key {key!r}")
            seen.add(key)
            vtype = parser.uint32()
            if key == TEMPLATE_KEY or key.startswith(TEMPLATE_PREFIX):
                if vtype != STRING:
                    raise _Bad(f"{key} is not a string (type {vtype})")
                name = "default" if key == TEMPLATE_KEY else key[len(TEMPLATE_PREFIX):]
                if name in templates:
                    raise _Bad(f"two templates named {name!r}")
                templates[name] = parser.text(key)
            elif key == TEMPLATE_NAMES_KEY:
                if vtype != ARRAY:
                    raise _Bad(f"{key} is not an array (type {vtype})")
                names = tuple(parser.strings(key, 1))
            else:
                parser.skip_value(vtype, key)
            keys += 1
    except _Bad as exc:
        reason = str(exc)
    except ContentReadError as exc:
        reason, permanent = f"read failed: {exc}", exc.permanent
    if reason is None:
        missing = [n for n in names if n not in templates]
        if missing:
            reason = f"tokenizer.chat_templates lists {missing[0]!r} but the file has no tokenizer.chat_template.{missing[0]}"
    if reason is not None:  # keys are the file's text: the reason stays one visible line
        reason = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in reason)
    return GgufHeader(version=version, endian=endian, templates=templates, metadata_keys=keys,
                      bytes_read=reader.bytes_read - start, not_inspected=reason,
                      requests=stream.requests, template_names=names,
                      read_error_permanent=permanent)
