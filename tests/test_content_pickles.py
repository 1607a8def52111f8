"""Pickle inspection, pure: tables of bytes in, verdicts out (monitor/content/pickles.py)."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest

from monitor.content import allowlist
from monitor.content.pickles import PICKLE_EXTENSIONS, inspect_file, wants_inspection
from monitor.content.reader import BytesReader, ContentCaps, ContentReadError
from tests import content_corpus as cc

EVIL = cc.evil_cases()
BENIGN = cc.benign_cases()


def verdict(data: bytes, name: str = "x.pkl", caps: ContentCaps = ContentCaps()):
    return inspect_file(BytesReader(data, name), caps)


@pytest.mark.parametrize("case", EVIL + BENIGN, ids=lambda c: f"{c.severity}:{c.name}")
def test_corpus_severity(case):
    v = verdict(case.data, case.name)
    assert v.severity == case.severity, (case.note, v)
    assert v.bytes_read <= max(len(case.data), 0) * 2 + 4096


@pytest.mark.parametrize("case", BENIGN, ids=lambda c: c.name)
def test_benign_files_as_real_writers_make_them_have_nothing_unknown(case):
    v = verdict(case.data, case.name)
    assert v.dangerous == () and v.unknown == ()
    if case.name != "tf_model.h5":
        assert v.not_inspected is None
    assert v.is_pickle == (case.severity == "medium")


@pytest.mark.parametrize("name,expected", sorted(cc.EXPECTED_IMPORT.items()))
def test_dangerous_import_is_named(name, expected):
    case = next(c for c in EVIL if c.name == name)
    v = verdict(case.data, case.name)
    assert expected in v.dangerous and expected in v.imports


def test_every_critical_case_names_its_import():
    assert {c.name for c in EVIL if c.severity == "critical"} == set(cc.EXPECTED_IMPORT)


def test_nullifai_payload_then_broken_stream_is_critical_and_not_inspected():
    case = next(c for c in EVIL if c.name == "nullifai.bin")
    v = verdict(case.data, case.name)
    assert v.severity == "critical" and v.dangerous == ("posix.system",)
    assert "unsupported opcode" in v.not_inspected


@pytest.mark.parametrize("name,words", [
    ("nullifai/pytorch_model.bin", "7z container"), ("gzip_model.pt", "gzip container"),
    ("local_name.bin", "disagrees with the central directory"),
    ("local_flags.bin", "flags 0x1 vs 0x0"), ("no_stop.pkl", "exhausted before seeing STOP"),
    ("bad_opcode.pkl", "unsupported opcode"),
])
def test_fail_closed_reasons(name, words):
    case = next(c for c in EVIL if c.name == name)
    v = verdict(case.data, case.name)
    assert v.severity == "high" and words in v.not_inspected


def test_pickle_named_safetensors_is_caught_and_real_safetensors_is_not():
    assert verdict(cc.EVIL_PKL, "model.safetensors").container == "pickle"
    real = next(c for c in BENIGN if c.name == "model.safetensors")
    v = verdict(real.data, real.name)
    assert (v.container, v.severity, v.is_pickle) == ("safetensors", "none", False)


def test_keras_files_are_listed_not_flagged():
    v = verdict(b"\x89HDF\r\n\x1a\n" + bytes(64), "model.h5")
    assert v.container == "keras" and v.evidence_only and v.severity == "none"
    assert "not inspected" in v.not_inspected
    keras_zip = cc.zip_archive([("config.json", b"{}"), ("model.weights.h5", b"\x89HDF")])
    v = verdict(keras_zip, "model.keras")
    assert v.container == "keras" and v.severity == "none" and v.not_inspected


def test_legacy_layout_reads_five_pickles_and_not_the_storages():
    sd = cc.state_dict(("Float",))
    sd["big"] = cc._Tensor(cc._Storage("Float", "big", bytes(8_000_000), 2_000_000), (2_000_000,))
    data = cc.torch_legacy(sd)
    v = verdict(data, "pytorch_model.bin")
    assert v.container == "legacy" and v.severity == "medium"
    assert "torch._utils._rebuild_tensor_v2" in v.imports and "torch.FloatStorage" in v.imports
    assert v.bytes_read < 200_000 < len(data)
    # a sixth pickle after the storage keys is raw storage to torch: never unpickled
    assert verdict(data + cc.EVIL_PKL, "x.pt").severity == "medium"


def test_zip_reads_only_the_end_directory_and_pickles():
    sd = cc.state_dict(("Float",))
    big = [("archive/data/999", bytes(6_000_000))]
    data = cc.torch_zip(sd, extra_members=big)
    reader = BytesReader(data, "pytorch_model.bin")
    v = inspect_file(reader)
    assert v.severity == "medium" and reader.bytes_read < 150_000 and reader.calls <= 4


def test_pickle_over_the_cap_is_not_inspected_but_what_was_seen_is_judged():
    big = cc.proto(2) + cc.SYSTEM + cc.POP + cc.binbytes(bytes(50_000)) + cc.STOP
    v = verdict(big, caps=ContentCaps(pickle_bytes=10_000))
    assert v.severity == "critical" and "cap" in v.not_inspected
    member = cc.zip_archive([("archive/data.pkl", pickle.dumps(list(range(30_000)), 2))])
    v = verdict(member, "m.pt", ContentCaps(pickle_bytes=10_000))
    assert v.severity == "high" and "archive/data.pkl: over the 10,000-byte cap" in v.not_inspected
    deflated = cc.zip_archive([("archive/data.pkl", pickle.dumps(bytes(200_000), 2))],
                              deflate=("archive/data.pkl",))
    v = verdict(deflated, "m.pt", ContentCaps(pickle_bytes=10_000))
    assert v.severity == "high" and "over the 10,000-byte cap" in v.not_inspected


def test_members_over_the_count_cap_are_reported():
    members = [(f"archive/{i}.pkl", pickle.dumps(i, 2)) for i in range(5)]
    v = verdict(cc.zip_archive(members), "m.pt", ContentCaps(members=3))
    assert v.severity == "high" and "2 of 5" in v.not_inspected


def test_zip64_and_zipfile_written_archives_are_read():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as f:
            f.write(cc.EVIL_PKL)
    assert verdict(buf.getvalue(), "m.pt").dangerous == ("posix.system",)


@pytest.mark.parametrize("mutate,words", [
    (lambda d: d.replace(b"PK\x05\x06", b"PK\x05\x07"), "no ZIP end record"),
    (lambda d: b"junk" + d, "not where the end record says"),
    (lambda d: d[:-2] + b"\x05\x00", "comment length"),
])
def test_broken_zip_fails_closed(mutate, words):
    data = mutate(cc.zip_archive([("archive/data.pkl", pickle.dumps(1, 2))]))
    v = verdict(data, "m.pt")
    if data.startswith(b"junk"):
        assert v.severity == "high"
        return
    assert v.severity == "high" and words in v.not_inspected


def test_read_errors_become_not_inspected():
    class Failing(BytesReader):
        def read(self, offset, length):
            if self.calls:
                raise ContentReadError("503 from the CDN", permanent=False)
            return super().read(offset, length)

    data = cc.torch_zip(cc.state_dict(("Float",)))
    v = inspect_file(Failing(data, "pytorch_model.bin"))
    assert v.severity == "high" and v.not_inspected.startswith("read failed (transient)")
    assert v.read_error == "transient"


def test_nested_load_from_bytes_inspected_when_literal():
    inner = cc.torch_zip(cc.state_dict(("Float",)))
    clean = (cc.proto(2) + cc.call(cc.glob("torch.storage", "_load_from_bytes"),
                                   cc.binbytes(inner)) + cc.STOP)
    v = verdict(clean, "x.pt")
    assert v.severity == "medium" and "torch._utils._rebuild_tensor_v2" in v.imports


@pytest.mark.parametrize("stream,words", [
    (cc.proto(4) + b"C\x02os" + cc.s("system") + cc.STACK_GLOBAL + cc.STOP,
     "STACK_GLOBAL requires str"),
    (cc.proto(2) + cc.binget(3) + cc.STOP, "memo key 3"),
    (cc.proto(2) + cc.REDUCE + cc.STOP, "stack underflow"),
    (b"\x80\x09N.", "unsupported pickle protocol"),
])
def test_streams_a_real_unpickler_rejects_are_not_inspected(stream, words):
    v = verdict(stream)
    assert v.severity == "high" and words in v.not_inspected


def test_mark_semantics_follow_the_c_unpickler():
    # POP on a bare MARK removes the mark (C unpickler), so the strings below stay on the stack
    stream = (cc.proto(4) + cc.s("os") + cc.s("system") + cc.MARK + cc.POP + cc.STACK_GLOBAL
              + cc.STOP)
    assert verdict(stream).dangerous == ("os.system",)
    # MEMOIZE numbers by memo size after an explicit BINPUT
    stream = (cc.proto(4) + cc.s("posix") + cc.binput(0) + cc.POP + cc.s("system") + cc.MEMOIZE
              + cc.POP + cc.binget(0) + cc.binget(1) + cc.STACK_GLOBAL + cc.STOP)
    assert verdict(stream).dangerous == ("posix.system",)


def test_protocol_0_python2_names_map_like_fix_imports():
    assert verdict(b"ccopy_reg\n_reconstructor\n.").imports == ("copyreg._reconstructor",)
    assert verdict(b"c__builtin__\nset\n.").severity == "medium"


def test_tar_layout_member_walk_and_polyglot_head():
    data = next(c for c in BENIGN if c.name == "tar_layout.pt").data
    v = verdict(data, "old.pt")
    assert v.container == "tar" and "torch.FloatStorage" in v.imports and v.severity == "medium"


def test_joblib_raw_arrays_are_skipped_not_parsed():
    v = verdict(cc.joblib_estimator(), "model.joblib")
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in v.imports
    assert "sklearn.linear_model._logistic.LogisticRegression" in v.imports
    assert v.severity == "medium"


def test_object_npy_and_npz():
    v = verdict(cc.npy(np.array([1, "a"], dtype=object)), "a.npy")
    assert v.container == "npy" and v.is_pickle and v.severity == "medium"
    assert verdict(cc.npy(np.zeros(3)), "a.npy").severity == "none"
    v = verdict(cc.npz(compressed=False, a=np.array([cc._Reduce(print, 1)], dtype=object)), "a.npz")
    assert "builtins.print" in v.unknown and v.severity == "high"


@pytest.mark.parametrize("path,wanted", [
    ("pytorch_model.bin", True), ("sub/model.PT", True), ("rng_state.pth", True),
    ("a.pkl", True), ("a.pickle", True), ("m.ckpt", True), ("m.joblib", True), ("m.dill", True),
    ("a.npy", True), ("a.npz", True), ("model.safetensors", True), ("m.gguf", True),
    ("tf_model.h5", True), ("m.keras", True), ("weights", True), ("README.md", False),
    ("config.json", False), (".gitattributes", False), ("tokenizer.model", False),
])
def test_wants_inspection(path, wanted):
    assert wants_inspection(path) is wanted


def test_extensions_are_the_issues():
    assert set(PICKLE_EXTENSIONS) == {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt",
                                      ".joblib", ".dill", ".npy", ".npz"}


@pytest.mark.parametrize("name,judged", [
    ("torch._utils._rebuild_tensor_v2", "allowed"), ("torch._utils._rebuild_tensorX", "unknown"),
    ("torch.bfloat16", "allowed"), ("torch.storage.UntypedStorage", "allowed"),
    ("numpy.core.multiarray._reconstruct", "allowed"),
    ("numpy._core.multiarray._reconstruct", "allowed"),
    ("collections.OrderedDict", "allowed"), ("os.path.join", "dangerous"),
    ("builtins.getattr", "dangerous"), ("builtins.set", "allowed"),
    ("builtins.print", "unknown"), ("torch.storage._load_from_bytes", "nested"),
    ("numpy.load", "dangerous"), ("joblib.load", "dangerous"), ("pickle.loads", "dangerous"),
    ("collections.OrderedDict.__globals__", "dangerous"), ("torchvision.models.ResNet", "unknown"),
    ("osx.system", "unknown"), ("webbrowser.open", "dangerous"),
])
def test_allowlist_is_exact_pairs_and_families_at_dots(name, judged):
    assert allowlist.judge(name) == judged


def test_read_is_bounded_for_a_huge_plain_pickle():
    data = pickle.dumps(bytes(5_000_000), protocol=4)
    reader = BytesReader(data, "big.pkl")
    v = inspect_file(reader)
    # windows grow geometrically from the last whole opcode up to the cap: under twice the cap
    assert v.not_inspected == "big.pkl: over the 1,000,000-byte cap"
    assert v.severity == "high" and reader.bytes_read < 2_000_000


def test_struct_and_corpus_bytes_are_deterministic():
    # the end-to-end engineer publishes these bytes: they must not change between calls
    a = {c.name: c.data for c in cc.all_cases()}
    b = {c.name: c.data for c in cc.all_cases()}
    assert a.keys() == b.keys()
    assert len(a) == len(cc.all_cases())          # names are unique paths
    assert all(a[k] == b[k] for k in a)


class SparseReader(BytesReader):
    """A file of byte segments and zero-filled holes (a 5 GB archive without 5 GB of memory)."""

    def __init__(self, segments, path):
        super().__init__(b"", path)
        self.segments, self.total = segments, sum(
            s if isinstance(s, int) else len(s) for s in segments)

    @property
    def size(self):
        return self.total

    def read(self, offset, length):
        out, at = bytearray(), 0
        end = min(offset + length, self.total)
        for seg in self.segments:
            n = seg if isinstance(seg, int) else len(seg)
            lo, hi = max(offset, at), min(end, at + n)
            if lo < hi:
                out += bytes(hi - lo) if isinstance(seg, int) else seg[lo - at:hi - at]
            at += n
        self._read += len(out)
        self.calls += 1
        return bytes(out)


@pytest.mark.parametrize("payload,severity", [(None, "medium"), (cc.EVIL_PKL, "critical")])
def test_5gb_zip64_archive_costs_a_few_ranges(payload, severity):
    with cc.stand_ins(cc._torch_modules()):
        pkl, _ = cc.torch_pickle(cc.state_dict(("Float", "Half")))
    members = [("archive/data.pkl", pkl), ("archive/data/0", 5 * 1024**3),
               ("archive/version", b"3\n")]
    if payload:
        members.append(("archive/z.pkl", payload))
    reader = SparseReader(cc.zip_segments(members, zip64=True), "pytorch_model.bin")
    v = inspect_file(reader)
    assert v.severity == severity and v.not_inspected is None
    assert reader.calls <= 4 + bool(payload) and reader.bytes_read < 200_000
    assert reader.size > 5 * 1024**3


def test_joblib_wrapper_made_through_copyreg_is_followed_too():
    # joblib skips the raw bytes after the BUILD of any NumpyArrayWrapper instance, however
    # made; if we did not, bytes joblib skips could hide (as a BINBYTES argument to us) the
    # payload joblib then runs.
    dtype = (cc.call(cc.glob("numpy", "dtype"), cc.u("u1"), b"\x89", b"\x88")
             + cc.MARK + b"K\x03" + cc.u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00"
             + cc.TUPLE + cc.BUILD)
    state = (cc.EMPTY_DICT + cc.MARK + cc.u("shape") + b"K\x05\x85" + cc.u("dtype") + dtype
             + b"u")
    wrapper = (cc.call(cc.glob("copyreg", "_reconstructor"),
                       cc.glob("joblib.numpy_pickle", "NumpyArrayWrapper"),
                       cc.glob("builtins", "object"), b"N") + state + cc.BUILD)
    # 5 raw bytes to joblib; to a reader that misses the wrapper, BINBYTES swallowing the payload
    raw = b"B" + len(cc.SYSTEM).to_bytes(4, "little")
    stream = cc.proto(2) + wrapper + raw + cc.SYSTEM + cc.STOP
    v = verdict(stream, "m.joblib")
    assert "posix.system" in v.dangerous


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # pickletools on bad escapes
@pytest.mark.parametrize("seed", range(3))
def test_random_and_mutated_bytes_never_raise(seed):
    import random

    rng = random.Random(seed)
    cases = [c.data for c in cc.all_cases()]
    for _ in range(150):
        data = bytearray(rng.choice(cases))
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data) + 1)]
        for name in ("x.pkl", "x.safetensors", "x.npz"):
            v = verdict(bytes(data), name)
            assert v.severity in ("critical", "high", "medium", "none")
            assert not (v.not_inspected or "").startswith("internal error"), v.not_inspected


@pytest.mark.parametrize("size", [10_000, 70_000, 300_000, 700_000])
def test_streams_longer_than_the_first_read_are_followed_to_stop(size):
    # the walker reads on past the head block and its 64 KiB windows, up to the cap
    data = pickle.dumps({"blob": list(range(size // 4)), "end": cc._Reduce(print, 1)}, 4)
    assert 4096 < len(data) < 1_000_000
    v = verdict(data, "d.pkl")
    assert v.not_inspected is None and v.unknown == ("builtins.print",)
    legacy_sd = cc.state_dict(("Float",))
    legacy_sd["names"] = [f"n{i}" for i in range(size // 20)]
    reader = BytesReader(cc.torch_legacy(legacy_sd), "m.pt")
    v = inspect_file(reader)
    assert (v.container, v.severity, v.not_inspected) == ("legacy", "medium", None)
    assert reader.bytes_read < 2 * len(reader._data) + 70_000


def test_npy_with_a_long_header_and_a_zip_with_too_many_entries():
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (2,), " + b" " * 6000 + b"}\n"
    body = pickle.dumps(np.array([1, cc._Reduce(print, 1)], dtype=object), 3)
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body
    assert "builtins.print" in verdict(data, "a.npy").unknown
    data = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + body
    assert "builtins.print" in verdict(data, "a.npy").unknown
    many = cc.zip_archive([(f"{i}", b"") for i in range(65537)], align=0, zip64=True)
    assert "more than 65,536" in verdict(many, "m.pt").not_inspected


@pytest.mark.parametrize("text", [
    b"MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted",
    b"Copyright 2024 The Authors. All rights reserved.\n" + b"Licensed under the Apache " * 20,
    b"FROM python:3.11\nRUN pip install torch\n", b"                         Apache License",
    b"lm_head.weight\n" * 50, b"(this file is a note)\n" * 40,
    b"XLNet model card\n" + b"x" * 5000, b"Trained with care\n" * 300,
])
def test_text_files_without_extension_are_not_taken_for_pickles(text):
    v = verdict(text, "NOTICE")
    assert (v.severity, v.is_pickle, v.not_inspected) == ("none", False, None)
    assert verdict(cc.EVIL_PKL, "NOTICE").severity == "critical"
    assert verdict(b"cos\nsystem\n(S'id'\ntR.", "weights").severity == "critical"
    # protocol 0, payload first then a long argument or a broken stream, named as weights
    long_arg = b"cos\nsystem\n(S'" + b"x" * 6000 + b"'\ntR."
    assert verdict(long_arg, "model.safetensors").severity == "critical"
    unknown_long = b"cmypkg\nLoader\n(S'" + b"x" * 6000 + b"'\ntR."
    assert verdict(unknown_long, "model.safetensors").unknown == ("mypkg.Loader",)
    broken = b"cposix\nsystem\n(S'id'\ntR\xff\xfe"
    v = verdict(broken, "model.safetensors")
    assert v.severity == "critical" and "unsupported opcode" in v.not_inspected


def test_allowlist_and_dangerous_list_do_not_overlap():
    assert not [n for n in allowlist.ALLOWED if allowlist._in_family(n, allowlist.DANGEROUS)]
    assert all("." in n for n in allowlist.ALLOWED)     # exact module.name pairs
    assert not allowlist.NESTED_LOADERS & allowlist.ALLOWED


def test_deep_nesting_and_many_marks_stay_bounded():
    deep = cc.proto(2) + b"N" + b"\x85" * 300_000 + cc.STOP            # ((((None,),),),)…
    assert verdict(deep, caps=ContentCaps(pickle_bytes=400_000)).severity == "medium"
    marks = cc.proto(2) + cc.MARK * 200_000 + b"N" + cc.STOP
    assert verdict(marks).severity == "medium"
    tar = cc._tar([("storages", cc.proto(2) + b"N" + b"\x85" * 100_000 + cc.STOP)])
    v = verdict(tar, "old.pt")
    assert v.severity == "high" and "record count of tuple" in v.not_inspected


from hypothesis import given, settings, strategies as st  # noqa: E402

_plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    | st.frozensets(st.integers(), max_size=4).map(set) | st.frozensets(st.text(), max_size=3),
    max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_plain, min_size=1, max_size=3), protocol=st.integers(0, 5))
def test_what_the_real_pickler_writes_for_plain_data_is_read_to_the_end(values, protocol):
    """Differential: every stream CPython's pickler writes for builtins, at every protocol and
    back to back, is followed to STOP and imports only allowlisted names."""
    data = b"".join(pickle.dumps(v, protocol=protocol) for v in values)
    v = verdict(data, "plain.pkl")
    assert v.not_inspected is None, v.not_inspected
    assert v.severity == "medium" and v.dangerous == v.unknown == ()
    assert set(v.imports) <= {"builtins.set", "builtins.frozenset", "_codecs.encode",
                              "builtins.bytes", "builtins.bytearray"}


def test_a_tar_whose_first_bytes_are_also_a_pickle_is_judged_both_ways():
    # tar sniffing must not hide what pickle.load would run from the same bytes
    tar = bytearray(cc._tar([("pickle", pickle.dumps({"a": 1}, 2))]))
    name = cc.proto(2) + cc.SYSTEM + cc.STOP
    tar[:len(name)] = name
    tar[148:156] = b"        "
    tar[148:155] = f"{sum(tar[:512]):06o}\0".encode()
    v = verdict(bytes(tar), "old.pt")
    assert v.container == "tar" and "posix.system" in v.dangerous
