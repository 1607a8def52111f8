"""Every command is documented: its docstring is its --help, with an example, and the README lists it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from monitor.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# the reference moved to docs/ (one subject a page); a section is looked up in README and docs alike
DOCS = README + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_has_summary_and_example(name):
    doc = COMMANDS[name].__doc__ or ""
    assert "Example: hubwatch " + name in doc
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert doc.strip().splitlines()[0] in out.getvalue()
    assert f"`hubwatch {name}" in README


def test_top_level_help_lists_every_command_and_exit_codes():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    text = out.getvalue()
    assert all(name in text for name in COMMANDS) and "78 config error" in text


def test_usage_errors_exit_2():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2


def test_top_level_help_gives_an_example_of_every_command():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    examples = out.getvalue().split("Examples:", 1)[1].splitlines()
    for name, fn in COMMANDS.items():
        (line,) = [x for x in (fn.__doc__ or "").splitlines() if "Example: hubwatch " + name in x]
        assert "  " + line.strip()[len("Example: "):] in examples, name


@pytest.mark.parametrize("heading, example", [
    ("## Status", "hubwatch status"),
    ("## Triage", "hubwatch ack "),
    ("## Know what we load: refs scan", "hubwatch refs scan "),
    ("## Daily digest", 'digest = "09:00"'),
])
def test_readme_has_a_section_with_an_example_for_each_operator_feature(heading, example):
    assert f"\n{heading}\n" in DOCS, heading
    section = DOCS.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    assert example in section, (heading, example)
