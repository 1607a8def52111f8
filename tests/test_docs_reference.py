"""The reference stays whole: every config key the loader reads has exactly one row in
docs/configuration.md, every finding kind the code raises exactly one row in docs/detection.md,
and every command's --help links its docs page. Keys and kinds are read from the code, not from a
list kept here, so a key or kind added anywhere (other branches included) fails this test until
it is documented; the message names each missing or duplicated one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from monitor import config as config_mod

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Every table, so the loader asks for every key it knows (a [[pin]] for the pin keys).
PROBE_CONFIG = """
[hub]
[state]
[pins]
[alerts]
[slack]
[webhook]
[lookalike]
[http]
[hub_webhook]
[roster]
[limits]
[[pin]]
repo = "org/model"
track = "main"
"""


def config_keys(tmp_path: Path, monkeypatch) -> set[str]:
    """The keys `config.load` asks for, as the docs spell them (`hub.timeout`, `[[pin]] repo`)."""
    asked: set[str] = set()
    original = config_mod._Reader.get

    def recording(self, name, *args, **kwargs):
        prefix = re.sub(r"^pin\[\d+\]$", "[[pin]]", self.prefix)
        asked.add(f"{prefix} {name}" if prefix == "[[pin]]" else f"{prefix}.{name}" if prefix else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(config_mod._Reader, "get", recording)  # our own loader, not the Hub client
    path = tmp_path / "config.toml"
    path.write_text(PROBE_CONFIG)
    config_mod.load(path, env={})
    return {k for k in asked if "." in k or k.startswith("[[pin]]")} - {"pin"}


def table_keys(page: Path) -> list[str]:
    """The backticked names in the first cell of every table row of `page`, one entry per mention."""
    out: list[str] = []
    for line in page.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            first = line.split("|")[1]
            out += re.findall(r"`([^`]+)`", first)
    return out


def _report(what: str, page: str, missing: set[str], duplicated: set[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{what} not documented in {page} (add one table row each): {', '.join(sorted(missing))}")
    if duplicated:
        parts.append(f"{what} documented more than once in {page} (keep one row): {', '.join(sorted(duplicated))}")
    return "; ".join(parts)


def test_every_config_key_is_documented_exactly_once(tmp_path, monkeypatch):
    keys = config_keys(tmp_path, monkeypatch)
    assert {"hub.endpoint", "pins.every", "[[pin]] repo", "lookalike.clone_budget"} <= keys, keys  # the probe works
    rows = table_keys(DOCS / "configuration.md")
    missing = {k for k in keys if k not in rows}
    duplicated = {k for k in keys if rows.count(k) > 1}
    assert not (missing or duplicated), _report("config key(s)", "docs/configuration.md", missing, duplicated)


def finding_kinds() -> set[str]:
    """Kinds the code raises: monitor.detect.findings.KINDS (what `findings --kind` accepts), and
    the first argument of every `Finding.make(...)`/`Finding(...)` call that is a literal, which
    must be one of them."""
    from monitor.detect.findings import KINDS

    kinds: set[str] = set(KINDS)

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return strings(node.body) + strings(node.orelse)
        return []

    raised: set[str] = set()
    for path in (ROOT / "monitor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and node.args:
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else ""
                if (name == "make" and owner == "Finding") or name == "Finding":
                    raised.update(strings(node.args[0]))
    assert raised <= kinds, f"kinds raised but missing from monitor.detect.findings.KINDS: {sorted(raised - kinds)}"
    return kinds


def test_every_finding_kind_is_documented_exactly_once():
    kinds = finding_kinds()
    assert {"ref_moved", "risky_change", "tag_moved", "lookalike", "repo_clone", "scan_flagged"} <= kinds, kinds
    rows = table_keys(DOCS / "detection.md")
    missing = {k for k in kinds if k not in rows}
    duplicated = {k for k in kinds if rows.count(k) > 1}
    assert not (missing or duplicated), _report("finding kind(s)", "docs/detection.md", missing, duplicated)


def test_the_failure_message_names_what_is_missing_or_duplicated():
    assert _report("config key(s)", "docs/configuration.md", {"b.x", "a.y"}, {"c.z"}) == (
        "config key(s) not documented in docs/configuration.md (add one table row each): a.y, b.x; "
        "config key(s) documented more than once in docs/configuration.md (keep one row): c.z")


@pytest.mark.parametrize("command", ["run", "once", "status", "digest", "check-config", "findings", "ack", "unack",
                                     "lookup", "screen", "webhooks", "refs"])
def test_every_command_help_links_its_docs_page(command, capsys):
    from monitor.cli import COMMAND_DOCS, main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    page = COMMAND_DOCS[command]
    assert f"More: {page}" in out
    path, _, anchor = page.partition("#")
    text = (ROOT / path).read_text()
    if anchor:
        headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", text, re.M)}
        assert anchor in headings, f"{page}: no heading for #{anchor}"


def test_readme_tour_runs_the_five_commands_and_links_the_reference():
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    for step in ("hubwatch once", "hubwatch status", "hubwatch lookup", "hubwatch refs scan", "systemctl"):
        assert step in tour, step
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
