"""Write GGUF files (headers, and fake tensor infos and data after them) for tests and benchmarks.

Written from the GGUF specification (ggml docs/gguf.md): magic `GGUF`, a uint32 version, then
(v2/v3) uint64 tensor count and uint64 key-value count; each key is a GGUF string (uint64 length +
UTF-8 bytes), then a uint32 value type and the value; an array is a uint32 element type, a
uint64 count and the elements. Big-endian files (v3) write every number big-endian, the magic
bytes unchanged; a reader tells them apart by the version field.

    gguf_bytes({"general.architecture": "llama",
                "tokenizer.ggml.tokens": vocab(150_000),
                "tokenizer.chat_template": "{{ messages }}"}, endian="big", version=2)

Values are typed from Python: str -> STRING, bool -> BOOL, int -> UINT32, float -> FLOAT32,
list/tuple -> ARRAY (of STRING when the first element is a str, of INT32 for ints, FLOAT32 for
floats); `Typed(type, value)` forces a type (also for array elements: `Typed(ARRAY, (UINT8,
b"..."))`). `raw_header` and `kv_raw` build deliberately broken files (absurd counts, lengths
past any cap, unknown types).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_FORMATS = {UINT8: "B", INT8: "b", UINT16: "H", INT16: "h", UINT32: "I", INT32: "i",
            FLOAT32: "f", BOOL: "?", UINT64: "Q", INT64: "q", FLOAT64: "d"}


@dataclass(frozen=True)
class Typed:
    """A value with an explicit GGUF type. For ARRAY, `value` is (element_type, elements)."""

    type: int
    value: Any


def _p(endian: str) -> str:
    return "<" if endian == "little" else ">"


def gguf_string(text: str | bytes, endian: str = "little") -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack(_p(endian) + "Q", len(data)) + data


def _type_of(value: Any) -> int:
    if isinstance(value, Typed):
        return value.type
    if isinstance(value, (str, bytes)):
        return STRING
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return UINT32
    if isinstance(value, float):
        return FLOAT32
    if isinstance(value, (list, tuple)):
        return ARRAY
    raise TypeError(f"no GGUF type for {type(value).__name__}")


def _elements_type(items: Any) -> int:
    if not items:
        return INT32
    first = items[0]
    if isinstance(first, (str, bytes)):
        return STRING
    if isinstance(first, float):
        return FLOAT32
    if isinstance(first, (list, tuple)):
        return ARRAY
    return INT32


def _value(vtype: int, value: Any, endian: str) -> bytes:
    p = _p(endian)
    if isinstance(value, Typed):
        value = value.value
    if vtype == STRING:
        return gguf_string(value, endian)
    if vtype == ARRAY:
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int) \
                and isinstance(value[1], (list, tuple, bytes)):
            etype, items = value
        else:
            etype, items = _elements_type(value), value
        out = [struct.pack(p + "IQ", etype, len(items))]
        if etype in _FORMATS and not isinstance(items, bytes):
            out.append(struct.pack(p + str(len(items)) + _FORMATS[etype], *items))
        elif isinstance(items, bytes):
            out.append(items)
        else:
            out.extend(_value(etype, item, endian) for item in items)
        return b"".join(out)
    return struct.pack(p + _FORMATS[vtype], value)


def kv_raw(key: str | bytes, vtype: int, payload: bytes, endian: str = "little") -> bytes:
    """One key-value pair with a hand-made payload (hostile files)."""
    return gguf_string(key, endian) + struct.pack(_p(endian) + "I", vtype) + payload


def kv(key: str, value: Any, endian: str = "little") -> bytes:
    vtype = _type_of(value)
    return gguf_string(key, endian) + struct.pack(_p(endian) + "I", vtype) + _value(vtype, value, endian)


def raw_header(version: int = 3, tensors: int = 0, kv_count: int = 0, endian: str = "little") -> bytes:
    return b"GGUF" + struct.pack(_p(endian) + "IQQ", version, tensors, kv_count)


def tensor_infos(count: int, endian: str = "little") -> bytes:
    """`count` fake tensor infos (name, 2 dims, type F32, offset), as follow the key-values."""
    p = _p(endian)
    out = []
    for i in range(count):
        out.append(gguf_string(f"blk.{i}.weight", endian) + struct.pack(p + "IQQIQ", 2, 64, 64, 0, i * 64 * 64 * 4))
    return b"".join(out)


def gguf_bytes(metadata: Mapping[str, Any] | Iterable[tuple[str, Any]], *, version: int = 3,
               endian: str = "little", tensors: int = 2, tensor_data: int = 4096) -> bytes:
    """A whole small GGUF file: header, key-values (in the given order), `tensors` tensor infos,
    padding to 32 bytes and `tensor_data` bytes of tensor data."""
    items = list(metadata.items()) if isinstance(metadata, Mapping) else list(metadata)
    body = b"".join(kv(k, v, endian) for k, v in items)
    out = raw_header(version, tensors, len(items), endian) + body + tensor_infos(tensors, endian)
    out += b"\0" * (-len(out) % 32)
    return out + b"\x5a" * tensor_data


def vocab(n: int) -> list[str]:
    """`n` token strings of realistic lengths (1 to 12 bytes, some multi-byte UTF-8)."""
    return [f"▁t{i}" if i % 3 == 0 else f"tok{i:x}" for i in range(n)]


def llama_like(templates: Mapping[str, str], *, n_vocab: int = 32_000, merges: int = 0,
               template_names: bool = True) -> list[tuple[str, Any]]:
    """Key-values in the order llama.cpp's converter writes them: general.*, the model's numbers,
    the tokenizer arrays (tokens, scores, token types, merges), then the chat template(s).
    `templates` maps "default" to tokenizer.chat_template and any other name to
    tokenizer.chat_template.<name> (listed in tokenizer.chat_templates)."""
    items: list[tuple[str, Any]] = [
        ("general.architecture", "llama"),
        ("general.name", "Test Model"),
        ("general.file_type", 15),
        ("llama.context_length", 8192),
        ("llama.embedding_length", 4096),
        ("llama.rope.freq_base", 500000.0),
        ("tokenizer.ggml.model", "gpt2"),
        ("tokenizer.ggml.tokens", vocab(n_vocab)),
        ("tokenizer.ggml.scores", Typed(ARRAY, (FLOAT32, [float(-i) for i in range(n_vocab)]))),
        ("tokenizer.ggml.token_type", Typed(ARRAY, (INT32, [1] * n_vocab))),
    ]
    if merges:
        items.append(("tokenizer.ggml.merges", [f"t{i} k{i}" for i in range(merges)]))
    items.append(("tokenizer.ggml.bos_token_id", 1))
    named = [name for name in templates if name != "default"]
    if "default" in templates:
        items.append(("tokenizer.chat_template", templates["default"]))
    for name in named:
        items.append((f"tokenizer.chat_template.{name}", templates[name]))
    if named and template_names:
        items.append(("tokenizer.chat_templates", named))
    items.append(("general.quantization_version", 2))
    return items
