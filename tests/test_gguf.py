"""GGUF header reader: templates out of v2/v3 headers of either byte order, streamed by ranged
reads that stop after the last key, and hostile headers reported not inspected (never raised)."""

from __future__ import annotations

import struct

import pytest

from monitor.content.gguf import FIRST_CHUNK, MAX_CHUNK, read_gguf_header
from monitor.content.reader import BytesReader, ContentCaps, ContentReadError
from tests.gguf_writer import (
    ARRAY, INT32, STRING, UINT8, UINT32, Typed, gguf_bytes, gguf_string, kv, kv_raw,
    llama_like, raw_header,
)

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


class RecordingReader(BytesReader):
    """A BytesReader that remembers every range asked for."""

    def __init__(self, data: bytes, path: str = "model.gguf"):
        super().__init__(data, path)
        self.ranges: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.ranges.append((offset, length))
        return super().read(offset, length)


class UnsizedReader(RecordingReader):
    """A reader that does not know the file's size (a CDN answer without Content-Length)."""

    @property
    def size(self):
        return None


class FailingReader(RecordingReader):
    def __init__(self, data: bytes, fail_after: int, permanent: bool):
        super().__init__(data)
        self.fail_after, self.permanent = fail_after, permanent

    def read(self, offset: int, length: int) -> bytes:
        if len(self.ranges) >= self.fail_after:
            raise ContentReadError("CDN answered 503", permanent=self.permanent)
        return super().read(offset, length)


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("version", [2, 3])
def test_templates_read_from_either_byte_order_and_version(endian, version):
    items = llama_like({"default": TEMPLATE, "tool_use": "{{ tools | tojson }}", "rag": "{{ documents }}"},
                       n_vocab=2000, merges=500)
    data = gguf_bytes(items, version=version, endian=endian)
    header = read_gguf_header(RecordingReader(data))
    assert header.not_inspected is None
    assert (header.version, header.endian) == (version, endian)
    assert header.templates == {"default": TEMPLATE, "tool_use": "{{ tools | tojson }}", "rag": "{{ documents }}"}
    assert header.template_names == ("tool_use", "rag")
    assert header.metadata_keys == len(items)


def test_big_endian_numbers_are_really_big_endian():
    data = gguf_bytes([("tokenizer.chat_template", "x")], endian="big")
    assert data[4:8] == b"\0\0\0\3"
    assert read_gguf_header(BytesReader(data)).templates == {"default": "x"}


def test_stops_after_the_last_key_without_reading_tensor_data():
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=100), tensor_data=8 * 1024 * 1024)
    reader = RecordingReader(data)
    header = read_gguf_header(reader)
    assert header.templates == {"default": TEMPLATE}
    assert header.bytes_read == reader.bytes_read <= FIRST_CHUNK
    assert header.requests == 1 == len(reader.ranges)


def test_a_150k_vocabulary_is_walked_in_growing_chunks_never_held():
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=150_000, merges=150_000),
                      tensor_data=20 * 1024 * 1024)
    reader = RecordingReader(data)
    header = read_gguf_header(reader)
    assert header.not_inspected is None and header.templates == {"default": TEMPLATE}
    kv_end = data.index(TEMPLATE.encode()) + len(TEMPLATE)
    # every byte up to the template, not the 20 MB of tensor data after it
    assert kv_end <= header.bytes_read < kv_end + MAX_CHUNK
    assert header.bytes_read < len(data) - 15 * 1024 * 1024
    offsets = [offset for offset, _ in reader.ranges]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)   # nothing read twice
    assert max(length for _, length in reader.ranges) <= MAX_CHUNK
    assert reader.ranges[0] == (0, FIRST_CHUNK) and reader.ranges[1][1] == 2 * FIRST_CHUNK
    assert header.requests == len(reader.ranges) <= 10


def test_a_numeric_array_is_skipped_without_reading_it():
    blob = Typed(ARRAY, (UINT8, b"\x01" * (10 * 1024 * 1024)))
    data = gguf_bytes([("general.architecture", "llama"), ("weights.inline", blob),
                       ("tokenizer.chat_template", TEMPLATE)])
    reader = RecordingReader(data)
    header = read_gguf_header(reader)
    assert header.templates == {"default": TEMPLATE}
    assert header.bytes_read < 1024 * 1024     # the 10 MB array was stepped over, not read
    assert header.requests == 2


def test_every_value_type_is_skipped_correctly():
    items = [("u8", Typed(UINT8, 7)), ("i32", Typed(INT32, -3)), ("f32", 1.5), ("b", True),
             ("s", "text"), ("u64", Typed(10, 2**40)), ("i64", Typed(11, -2**40)), ("f64", Typed(12, 0.25)),
             ("u16", Typed(2, 65535)), ("i16", Typed(3, -1)), ("i8", Typed(1, -1)),
             ("nested", Typed(ARRAY, (ARRAY, [["a", "b"], ["c"]]))), ("floats", [0.5, 1.5]),
             ("tokenizer.chat_template", TEMPLATE)]
    for endian in ("little", "big"):
        header = read_gguf_header(BytesReader(gguf_bytes(items, endian=endian)))
        assert header.not_inspected is None, header.not_inspected
        assert header.templates == {"default": TEMPLATE} and header.metadata_keys == len(items)


def test_no_template_is_an_empty_mapping_not_an_error():
    header = read_gguf_header(BytesReader(gguf_bytes(llama_like({}, n_vocab=10))))
    assert header.templates == {} and header.not_inspected is None


def _hostile(*pairs: bytes, kv_count: int | None = None, version: int = 3, endian: str = "little") -> bytes:
    n = len(pairs) if kv_count is None else kv_count
    return raw_header(version, 1, n, endian) + b"".join(pairs) + b"\0" * 64


HOSTILE = {
    "absurd key-value count": (_hostile(kv_count=2**63), "key-value pairs"),
    "absurd array count": (_hostile(kv_raw("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 2**60))),
                           "elements"),
    "absurd numeric array": (_hostile(kv_raw("x", ARRAY, struct.pack("<IQ", UINT32, 2**61))), "elements"),
    "string past the cap": (_hostile(kv_raw("general.name", STRING, struct.pack("<Q", 2**62))), "runs past"),
    "key past the cap": (_hostile(struct.pack("<Q", 2**40)), "runs past"),
    "unknown value type": (_hostile(kv_raw("general.name", 42, b"")), "unknown value type 42"),
    "array of unknown type": (_hostile(kv_raw("x", ARRAY, struct.pack("<IQ", 99, 1))), "unknown value type 99"),
    "arrays nested too deep": (_hostile(kv_raw("x", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", ARRAY, 1)
                                               + struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", ARRAY, 1))),
                               "nested deeper"),
    "template not a string": (_hostile(kv_raw("tokenizer.chat_template", UINT32, b"\1\0\0\0")), "not a string"),
    "template not UTF-8": (_hostile(kv_raw("tokenizer.chat_template", STRING, gguf_string(b"\xff\xfe{{ x }}"))),
                           "not valid UTF-8"),
    "duplicate template key": (_hostile(kv("tokenizer.chat_template", "a"), kv("tokenizer.chat_template", "b")),
                               "duplicate key"),
    "listed name without template": (_hostile(kv("tokenizer.chat_templates", ["tool_use"])), "tool_use"),
    "template names not strings": (_hostile(kv("tokenizer.chat_templates", [1, 2])), "not an array of strings"),
    "unsupported version": (_hostile(version=7), "unsupported GGUF version 7"),
    "version 1": (_hostile(version=1), "version 1"),
    "not a GGUF": (b"PK\x03\x04" + b"\0" * 100, "not a GGUF file"),
    "too short": (b"GGUF\3\0", "not a GGUF file"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_headers_are_not_inspected_with_a_reason(name):
    data, reason = HOSTILE[name]
    header = read_gguf_header(BytesReader(data))
    assert header.not_inspected is not None and reason in header.not_inspected
    assert "\n" not in header.not_inspected
    assert header.bytes_read <= len(data)


def test_a_truncated_header_is_not_inspected():
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=50_000))
    cut = data[:data.index(b"tokenizer.chat_template")]
    header = read_gguf_header(BytesReader(cut))
    assert header.templates == {} and "end of the file" in header.not_inspected


def test_a_header_past_the_cap_stops_at_the_cap():
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=150_000, merges=150_000))
    caps = ContentCaps(header_bytes=1_000_000)
    reader = RecordingReader(data)
    header = read_gguf_header(reader, caps)
    assert header.templates == {} and "header cap" in header.not_inspected
    assert header.bytes_read <= 1_000_000
    assert all(offset + length <= 1_000_000 for offset, length in reader.ranges)


def test_a_huge_template_past_the_default_cap_is_refused_without_reading_it():
    pair = kv_raw("tokenizer.chat_template", STRING, struct.pack("<Q", 17 * 1024 * 1024))
    data = _hostile(pair) + b"x" * 1000   # declares 17 MiB, the file is small: never trusted
    reader = RecordingReader(data + b"\0" * (18 * 1024 * 1024))
    header = read_gguf_header(reader)
    assert "header cap" in header.not_inspected and header.bytes_read <= FIRST_CHUNK


def test_long_strings_in_a_string_array_cannot_walk_past_the_cap():
    strings = Typed(ARRAY, (STRING, ["x" * 400_000] * 5))
    data = gguf_bytes([("tokenizer.ggml.tokens", strings), ("tokenizer.chat_template", "t")])
    header = read_gguf_header(RecordingReader(data), ContentCaps(header_bytes=1_000_000))
    assert "header cap" in header.not_inspected and header.bytes_read <= 1_000_000


@pytest.mark.parametrize("permanent", [False, True])
def test_a_failed_read_is_not_inspected_and_keeps_whether_it_is_permanent(permanent):
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=150_000))
    header = read_gguf_header(FailingReader(data, fail_after=2, permanent=permanent))
    assert header.not_inspected.startswith("read failed: CDN answered 503")
    assert header.read_error_permanent is permanent and header.templates == {}


def test_without_a_known_size_the_cap_still_bounds_every_read():
    data = gguf_bytes(llama_like({"default": TEMPLATE}, n_vocab=150_000, merges=150_000))
    reader = UnsizedReader(data)
    header = read_gguf_header(reader, ContentCaps(header_bytes=2_000_000))
    assert "2,000,000-byte header cap" in header.not_inspected
    assert all(offset + length <= 2_000_000 for offset, length in reader.ranges)
    ok = read_gguf_header(UnsizedReader(data))
    assert ok.templates == {"default": TEMPLATE} and ok.not_inspected is None
    short = read_gguf_header(UnsizedReader(data[:100_000]))
    assert "file ends" in short.not_inspected


# ------------------------------------------------------------------------------------ fuzz

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALID = gguf_bytes(llama_like({"default": TEMPLATE, "tool_use": "{{ tools }}"}, n_vocab=300, merges=50),
                    tensor_data=64)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(24, len(_VALID)), st.sampled_from(["little", "big"]))
def test_mutated_headers_never_raise_and_stay_under_the_cap(mutations, cut, endian):
    data = bytearray(_VALID if endian == "little" else gguf_bytes(
        llama_like({"default": TEMPLATE}, n_vocab=300), endian="big", tensor_data=64))
    for at, value in mutations:
        if at < len(data):
            data[at] = value
    caps = ContentCaps(header_bytes=50_000)
    reader = RecordingReader(bytes(data[:cut]))
    header = read_gguf_header(reader, caps)
    assert header.bytes_read <= 50_000
    assert all(offset + length <= 50_000 for offset, length in reader.ranges)
    assert header.not_inspected is None or "\n" not in header.not_inspected
    if header.not_inspected is None:
        assert header.metadata_keys >= 1 or header.templates == {}


def test_a_key_with_control_characters_gives_a_one_line_visible_reason():
    """Keys are hostile text: a duplicate key holding a newline and an escape is named, escaped."""
    import struct

    key = b"evil\nkey\x1b[2J"
    kv = b""
    for _ in range(2):  # the same key twice: "duplicate key ..."
        kv += struct.pack("<Q", len(key)) + key + struct.pack("<I", 4) + struct.pack("<I", 1)  # UINT32 = 4
    data = b"GGUF" + struct.pack("<I", 3) + struct.pack("<Q", 0) + struct.pack("<Q", 2) + kv
    header = read_gguf_header(RecordingReader(data))
    assert header.not_inspected is not None and "duplicate key" in header.not_inspected
    assert "\n" not in header.not_inspected and "\x1b" not in header.not_inspected
    assert "\\n" in header.not_inspected
