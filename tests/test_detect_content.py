"""detect/content.py and risk.assess with content: tables of verdicts in, rules and findings out."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.detect import content as dc
from monitor.detect.risk import assess
from monitor.hub.models import RepoId

REPO = RepoId("model", "acme/m")


@dataclass(frozen=True)
class V:  # a PickleVerdict as the inspector returns it
    path: str
    imports: tuple = ()
    dangerous: tuple = ()
    unknown: tuple = ()
    not_inspected: str | None = None
    container: str = "zip"
    pickle: bool = True

    @property
    def severity(self) -> str:
        return ("critical" if self.dangerous else "high" if self.unknown or self.not_inspected
                else "medium" if self.pickle else "none")

    @property
    def is_pickle(self) -> bool:
        return self.pickle


@dataclass(frozen=True)
class Hit:
    rule: str
    severity: str
    template: str
    detail: str


@dataclass(frozen=True)
class TV:
    hits: tuple = ()
    diff: str = ""
    not_inspected: str | None = None


CLEAN = V("pytorch_model.bin", ("torch._utils._rebuild_tensor_v2", "collections.OrderedDict"))
EVIL = V("pytorch_model.bin", ("posix.system",), dangerous=("posix.system",))


def rules(report, flagged=None):
    return [(h.rule, h.severity) for h in assess((), (), ("pytorch_model.bin",), None, (),
                                                   dc.rules(report, flagged))]


def test_allowlisted_pickle_change_is_medium_with_the_globals_in_evidence():
    report = dc.ContentReport((CLEAN,))
    assert rules(report) == [("pickle_file_changed", "medium")]
    hit = assess((), (), ("pytorch_model.bin",), None, (), dc.rules(report))[0]
    assert "inspected: 2 globals, all allowlisted" in hit.detail
    assert dc.evidence(report)["allowlisted_globals"] == list(CLEAN.imports)


def test_without_inspection_a_pickle_change_stays_high():
    assert [(h.rule, h.severity) for h in assess((), (), ("pytorch_model.bin",))] == [("pickle_file_changed", "high")]
    unread = dc.ContentReport(unread=(("pytorch_model.bin", "file cap of this check reached (200 files)"),))
    assert rules(unread) == [("pickle_file_changed", "high"), ("not_inspected", "high")]


def test_dangerous_import_is_critical_naming_module_name_and_file_and_the_hubs_silence():
    hits = assess((), (), ("pytorch_model.bin",), None, (), dc.rules(dc.ContentReport((EVIL,)), {}))
    assert (hits[0].rule, hits[0].severity) == ("pickle_imports", "critical")
    assert hits[0].detail == "pytorch_model.bin imports posix.system (the Hub's scan did not flag it)"
    assert ("pickle_file_changed", "high") in [(h.rule, h.severity) for h in hits]
    flagged = dc.rules(dc.ContentReport((EVIL,)), {"pytorch_model.bin": "unsafe"}).hits[0]
    assert flagged.detail == "pytorch_model.bin imports posix.system"
    assert "has not scanned" in dc.rules(dc.ContentReport((EVIL,)), None).hits[0].detail


def test_unknown_global_is_high_and_a_broken_stream_is_not_inspected_with_what_came_before():
    v = V("a.pkl", ("mylib.Thing",), unknown=("mylib.Thing",))
    assert rules(dc.ContentReport((v,))) == [("pickle_file_changed", "high"), ("pickle_imports", "high")]
    nullifai = V("m.bin", ("posix.system",), dangerous=("posix.system",), not_inspected="stream does not end in STOP")
    got = [(h.rule, h.severity) for h in dc.hits(dc.ContentReport((nullifai,)), {})]
    assert got == [("pickle_imports", "critical"), ("not_inspected", "high")]


def test_a_pickle_named_safetensors_counts_as_a_pickle_change():
    v = V("model.safetensors", ("builtins.exec",), dangerous=("builtins.exec",))
    hits = assess(("model.safetensors",), (), (), None, (), dc.rules(dc.ContentReport((v,)), {}))
    assert [h.rule for h in hits] == ["pickle_imports", "pickle_file_changed"]
    assert "model.safetensors" in hits[1].detail


def test_template_rules_and_the_audit():
    changed = TV((Hit("chat_template_changed", "medium", "default", "template changed"),), diff="-a\n+b")
    code = TV((Hit("chat_template_code", "critical", "default", "cycler.__init__.__globals__"),))
    report = dc.ContentReport(templates=(dc.TemplateResult("chat templates", changed),))
    assert [(h.rule, h.severity) for h in dc.hits(report)] == [("chat_template_changed", "medium")]
    assert dc.audit_status(report) == ("clean", None)
    assert dc.content_flagged(REPO, "https://hf.co", "a" * 40, report) is None
    bad = dc.ContentReport(templates=(dc.TemplateResult("model-Q4.gguf", code),), keras=("tf_model.h5",))
    f = dc.content_flagged(REPO, "https://hf.co", "a" * 40, bad)
    assert (f.kind, f.severity, f.subject) == ("content_flagged", "critical", "acme/m")
    assert "model-Q4.gguf: cycler.__init__.__globals__" in f.summary
    assert f.evidence["content"]["keras_not_inspected"] == ["tf_model.h5"]
    assert dc.audit_status(bad)[0] == "flagged"
    only_unread = dc.ContentReport((V("x.pkl", not_inspected="7z archive: unknown container"),))
    assert dc.audit_status(only_unread) == ("not_inspected", "x.pkl (7z archive: unknown container)")


def test_content_state_round_trips_and_tolerates_garbage():
    st = dc.ContentState("a" * 40, "clean", None, {"chat templates": {"default": "{{ x }}"}})
    assert dc.ContentState.from_json(st.to_json()) == st
    assert dc.ContentState.from_json("{not json") is None and dc.ContentState.from_json(None) is None


def test_inspection_order_pickles_first_then_sniffed_shallow_and_small_first():
    from monitor.jobs.content_check import pickle_order

    paths = ["deep/a/model.safetensors", "model.safetensors", "shard-2.bin", "shard-1.bin", "sub/x.pkl",
             "README.md", "config.json", "weights"]
    sizes = {"shard-1.bin": 9_000_000_000, "shard-2.bin": 10}
    assert pickle_order(paths, sizes) == ["shard-2.bin", "shard-1.bin", "sub/x.pkl", "model.safetensors",
                                          "weights", "deep/a/model.safetensors"]
