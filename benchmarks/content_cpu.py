"""Benchmark: CPU per inspected file of the pickle inspector (monitor/content/pickles.py).

Not a test.  Run by hand:  .venv/bin/python benchmarks/content_cpu.py [--repeat N]

The files are built in memory by tests/content_corpus.py (the writers' layouts) and read
through an in-memory RangeReader, so what is measured is the inspector alone: sniffing, ZIP
directory, member reads, the opcode walk and the verdict — the network is the end-to-end
benchmarks' business. For each file: CPU seconds per inspection (process_time, best and median
of --repeat runs), bytes and ranges read, and the verdict.

- a 5 GB ZIP64 PyTorch archive whose data.pkl is ~1 MB (a big state dict: 6,000 tensors), the
  storage a hole of zeros (never read);
- the same state dict in the legacy layout (5 pickles, then 5 GB of raw storages, a hole);
- a 1 MB plain pickle of a dict of lists; a joblib estimator with 200 arrays; a 64-member npz;
- the evasion corpus, per file (mean).

Targets: none set by the issue beyond "CPU per inspected file"; the byte and range counts show
the 5 GB archive costs ≤ 4 ranges and ≤ 2 MB (the issue's target when data.pkl ≤ 1 MB).
"""

from __future__ import annotations

import argparse
import io
import pickle
import statistics
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from monitor.content.pickles import inspect_file  # noqa: E402
from monitor.content.reader import BytesReader  # noqa: E402
from tests import content_corpus as cc  # noqa: E402


class SparseReader(BytesReader):
    def __init__(self, segments, path):
        super().__init__(b"", path)
        self.segments = segments
        self.total = sum(s if isinstance(s, int) else len(s) for s in segments)

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


def big_state_dict(n: int):
    sd = cc.OrderedDict()
    for i in range(n):
        st = cc._Storage("Half", str(i), b"", 4096 * 1024)
        sd[f"model.layers.{i // 10}.mlp.block_{i % 10}.weight"] = cc._Tensor(st, (4096, 1024))
    return sd


def files():
    with cc.stand_ins(cc._torch_modules()):
        pkl, storages = cc.torch_pickle(big_state_dict(6000))
        legacy_body, _ = cc.torch_pickle(big_state_dict(6000), legacy=True)
    hole = 5 * 1024**3
    zip_segments = cc.zip_segments([("archive/data.pkl", pkl), ("archive/data/0", hole),
                                    ("archive/version", b"3\n")], zip64=True)
    head = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    keys = pickle.dumps([st.key for st in storages], protocol=2)
    legacy = [head + legacy_body + keys + struct.pack("<q", hole // 2), hole]
    plain = pickle.dumps({f"k{i}": list(range(60)) for i in range(2800)}, protocol=4)
    est = cc.LogisticRegression()
    for i in range(200):
        setattr(est, f"w{i}", np.arange(i * 10, dtype=np.float32))
    buf = io.BytesIO()
    import joblib
    with cc.stand_ins({"sklearn.linear_model._logistic": {"LogisticRegression":
                                                          cc.LogisticRegression}}):
        joblib.dump(est, buf)
    npz = cc.npz(compressed=True, **{f"a{i}": np.arange(100) for i in range(64)})
    return [
        ("5 GB ZIP64 archive, data.pkl %.2f MB" % (len(pkl) / 1e6),
         lambda: SparseReader(zip_segments, "pytorch_model.bin")),
        ("legacy layout, 5 GB of storage, object pickle %.2f MB" % (len(legacy_body) / 1e6),
         lambda: SparseReader(legacy, "pytorch_model.bin")),
        ("plain pickle %.2f MB" % (len(plain) / 1e6), lambda: BytesReader(plain, "d.pkl")),
        ("joblib estimator, 200 arrays (%.2f MB)" % (len(buf.getvalue()) / 1e6),
         lambda: BytesReader(buf.getvalue(), "m.joblib")),
        ("npz, 64 compressed members", lambda: BytesReader(npz, "a.npz")),
    ]


def measure(make, repeat: int):
    times, verdict, reader = [], None, None
    for _ in range(repeat):
        reader = make()
        t0 = time.process_time()
        verdict = inspect_file(reader)
        times.append(time.process_time() - t0)
    return min(times), statistics.median(times), verdict, reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print("| file | CPU best / median | read | ranges | verdict |")
    print("|---|---|---|---|---|")
    for label, make in files():
        best, med, v, r = measure(make, args.repeat)
        print(f"| {label} | {best * 1000:.0f} / {med * 1000:.0f} ms | {r.bytes_read / 1e6:.2f} MB"
              f" | {r.calls} | {v.severity}, {len(v.imports)} globals"
              f"{', ' + v.not_inspected[:60] if v.not_inspected else ''} |")
    cases = cc.all_cases()
    t0 = time.process_time()
    for _ in range(args.repeat):
        for c in cases:
            inspect_file(BytesReader(c.data, c.name))
    per = (time.process_time() - t0) / (args.repeat * len(cases))
    print(f"| the corpus, {len(cases)} files (mean) | {per * 1000:.2f} ms | | | |")


if __name__ == "__main__":
    main()
