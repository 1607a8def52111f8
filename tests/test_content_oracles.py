"""picklescan and fickling as oracles on the corpus: every file either calls dangerous, we call
critical or high. Neither loads a pickle: picklescan's `scan_file_path` walks
`pickletools.genops` over each file written to a temp dir; fickling's analysis API
(`fickle.StackedPickle` decompiles the opcodes, `analysis.check_safety` judges the AST) is given
the file's bytes, or each `.pkl`/`.pickle`/`.bin` member of a ZIP.

"Dangerous" for picklescan: a global it rates Dangerous (an infected file). For fickling: a
severity of LIKELY_OVERTLY_MALICIOUS or worse — its LIKELY_UNSAFE is given to every import outside
the standard library (torch, numpy), i.e. to every real checkpoint, so it is not a verdict.
"""

from __future__ import annotations

import io
import logging
import zipfile

import pytest

from monitor.content.pickles import inspect_file
from monitor.content.reader import BytesReader
from tests.content_corpus import all_cases

picklescan = pytest.importorskip("picklescan.scanner")
fickling_fickle = pytest.importorskip("fickling.fickle")
fickling_analysis = pytest.importorskip("fickling.analysis")

# Where an oracle is stricter than us, and why we keep our verdict (any other disagreement fails).
ORACLE_FALSE_POSITIVES = {
    "model.joblib": "fickling rates joblib.numpy_pickle.NumpyArrayWrapper overtly malicious on "
                    "sight; we follow joblib's inline array bytes and inspect the nested pickle an "
                    "object dtype would load (evil.joblib and the wrapper tests prove it)",
    "numpy_objects.pkl": "fickling rates what numpy 2 writes for np.random.default_rng() "
                         "(numpy.random._pickle constructors, Cython's "
                         "__pyx_unpickle_SeedSequence) overtly malicious",
}


def _picklescan_dangerous(path: str) -> bool:
    try:
        result = picklescan.scan_file_path(path)
    except Exception:  # noqa: BLE001 - e.g. 7z without py7zr: the oracle could not scan it
        return False
    return result.infected_files > 0 or any(
        g.safety == picklescan.SafetyLevel.Dangerous for g in result.globals)


def _fickling_worst(data: bytes):
    """fickling's analysis (fickle.StackedPickle decompiles opcodes; analysis.check_safety judges
    the AST): the worst severity over the pickles back to back in `data`."""
    worst = fickling_analysis.Severity.LIKELY_SAFE
    try:
        for pickled in fickling_fickle.StackedPickle.load(io.BytesIO(data),
                                                          fail_on_decode_error=False):
            worst = max(worst, fickling_analysis.check_safety(pickled).severity)
    except Exception:  # noqa: BLE001 - fickling could not read it: it calls nothing dangerous
        pass
    return worst


def _fickling_dangerous(path: str) -> bool:
    data = open(path, "rb").read()
    worst = fickling_analysis.Severity.LIKELY_SAFE
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.lower().endswith((".pkl", ".pickle", ".bin")):
                        worst = max(worst, _fickling_worst(zf.read(info)))
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
            pass   # e.g. a local header that disagrees with the central directory
    else:
        worst = _fickling_worst(data)
    return worst >= fickling_analysis.Severity.LIKELY_OVERTLY_MALICIOUS


def test_every_file_an_oracle_calls_dangerous_we_call_critical_or_high(tmp_path, capsys):
    logging.disable(logging.CRITICAL)
    try:
        flagged, missed = {}, {}
        for case in all_cases():
            path = tmp_path / case.name.replace("/", "__")
            path.write_bytes(case.data)
            oracles = [name for name, said in (("picklescan", _picklescan_dangerous(str(path))),
                                               ("fickling", _fickling_dangerous(str(path))))
                       if said]
            ours = inspect_file(BytesReader(case.data, case.name)).severity
            if oracles:
                flagged[case.name] = oracles
                if ours not in ("critical", "high"):
                    missed[case.name] = (oracles, ours)
    finally:
        logging.disable(logging.NOTSET)
        capsys.readouterr()
    assert set(missed) == set(ORACLE_FALSE_POSITIVES), missed
    # the oracles do find the plain payloads (the comparison is not vacuous)
    assert {"os_system.pkl", "exec.pkl", "memo_stack_global.pkl", "second_pickle.bin",
            "legacy_evil.pt", "object_evil.npy", "evil/model.safetensors"} <= set(flagged)
