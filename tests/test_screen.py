"""`hubwatch screen` contract: monitor/screen.py's screen_stream."""

from __future__ import annotations

import io
import json

import pytest

import monitor.screen as screen_mod
from monitor.detect.lookalike import Screener
from monitor.screen import screen_stream

PROTECTED = ["EleutherAI", "meta-llama", "mistralai", "google", "openai"]


@pytest.fixture(scope="module")
def screener():
    return Screener(PROTECTED, allow=["openai-community"])


def run(screener, text, *, as_json=False):
    out, err = io.StringIO(), io.StringIO()
    count = screen_stream(io.StringIO(text).readlines(), screener, out, err, as_json=as_json)
    return count, out.getvalue().splitlines(), err.getvalue().splitlines()


def test_prints_only_lookalikes_in_input_order(screener):
    text = "# orgs seen today\n\nEleuterAI\nbigscience\n  meta-IIama  \nEleutherAI\nmistral-ai\n"
    count, out, err = run(screener, text)
    assert count == 3 and err == []
    assert [line.split()[0] for line in out] == ["EleuterAI", "meta-IIama", "mistral-ai"]
    assert out[0] == "EleuterAI looks like EleutherAI (omission; score 0.90)"


def test_comments_blank_lines_and_crlf_are_handled(screener):
    text = "\r\n   \n# EleuterAI is a comment\n\t# so is this\nEleuterAI\r\n"
    count, out, err = run(screener, text)
    assert count == 1 and err == [] and out[0].startswith("EleuterAI looks like EleutherAI")


def test_invalid_names_are_reported_with_line_numbers_and_never_stop_the_run(screener):
    text = "\n".join(["g00gle", "bad name", "EleutherAI/gpt-j-6B", "x" * 97, "naïve", "0penai"])
    count, out, err = run(screener, text)
    assert count == 2 and [line.split()[0] for line in out] == ["g00gle", "0penai"]
    assert len(err) == 4
    assert err[0].startswith("line 2: ") and "' ' at position 4" in err[0]
    assert err[1].startswith("line 3: ") and "namespace only" in err[1]
    assert err[2].startswith("line 4: ") and "97 characters" in err[2] and "..." in err[2]
    assert err[3].startswith("line 5: ") and "'ï'" in err[3]


def test_json_lines_have_the_documented_shape(screener):
    count, out, err = run(screener, "meta-IIama\nopenai-org\nnothing\n", as_json=True)
    assert count == 2 and err == []
    rows = [json.loads(line) for line in out]
    for row in rows:
        assert set(row) == {"name", "target", "techniques", "score"}
        assert isinstance(row["techniques"], list)
        assert all(isinstance(t, str) for t in row["techniques"])
        assert isinstance(row["score"], float) and 0.0 < row["score"] <= 1.0
    assert rows[0] == {"name": "meta-IIama", "target": "meta-llama", "techniques": ["homoglyph"],
                       "score": 1.0}
    assert rows[1]["target"] == "openai" and "affix" in rows[1]["techniques"]


def test_one_line_per_target_when_a_name_imitates_several():
    both = Screener(["meta-llama", "metallama"])
    count, out, _ = run(both, "meta_llama\n", as_json=True)
    assert count == 2
    assert {json.loads(line)["target"] for line in out} == {"meta-llama", "metallama"}


def test_allowlisted_and_protected_names_print_nothing(screener):
    assert run(screener, "openai-community\nOpenAI\nGOOGLE\n") == (0, [], [])


def test_empty_input(screener):
    assert run(screener, "") == (0, [], [])


def test_batches_keep_order_across_boundaries(screener, monkeypatch):
    monkeypatch.setattr(screen_mod, "BATCH", 2)
    names = ["EleuterAI", "fine", "g00gle", "also-fine", "bad name", "meta-IIama", "mistral-ai"]
    count, out, err = run(screener, "\n".join(names))
    assert count == 4 and len(err) == 1 and err[0].startswith("line 5: ")
    assert [line.split()[0] for line in out] == ["EleuterAI", "g00gle", "meta-IIama", "mistral-ai"]


def test_reads_any_iterable_of_lines(screener):
    out, err = io.StringIO(), io.StringIO()
    assert screen_stream(iter(["EleuterAI", "nope"]), screener, out, err, as_json=False) == 1


def test_a_huge_line_is_reported_and_the_next_lines_keep_their_numbers(screener, monkeypatch):
    monkeypatch.setattr(screen_mod, "BLOCK_CHARS", 64)  # lines far longer than a block
    text = "g00gle\n" + "x" * 1000 + "\nEleuterAI\n" + "y" * 300 + "\n0penai\n"
    out, err = io.StringIO(), io.StringIO()
    count = screen_stream(io.StringIO(text), screener, out, err, as_json=False)
    assert count == 3
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["g00gle", "EleuterAI", "0penai"]
    errors = err.getvalue().splitlines()
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 4"]
    assert all("at most 96 allowed" in e for e in errors)


def test_a_file_read_in_blocks_gives_the_same_lines_as_line_by_line(screener, monkeypatch):
    names = ["EleuterAI", "fine", "# note", "", "g00gle", "bad name", "meta-IIama", "x" * 97] * 20
    text = "\n".join(names) + "\n"
    by_lines = run(screener, text)
    monkeypatch.setattr(screen_mod, "BLOCK_CHARS", 50)
    out, err = io.StringIO(), io.StringIO()
    count = screen_stream(io.StringIO(text), screener, out, err, as_json=False)
    assert (count, out.getvalue().splitlines(), err.getvalue().splitlines()) == by_lines


def test_dot_segments_in_a_plain_block_are_reported_like_elsewhere(screener):
    plain = "EleuterAI\n..\ng00gle\n.\n"  # names only: the block is checked in one pass
    mixed = plain + "# a comment makes the block go line by line\n"
    expected = ["line 2: skipped '..': '..' is a path segment, not a name",
                "line 4: skipped '.': '.' is a path segment, not a name"]
    for text in (plain, mixed):
        count, out, err = run(screener, text)
        assert count == 2 and [line.split()[0] for line in out] == ["EleuterAI", "g00gle"]
        assert err == expected
        file_out, file_err = io.StringIO(), io.StringIO()  # a file: read in blocks
        assert screen_stream(io.StringIO(text), screener, file_out, file_err, as_json=False) == 2
        assert file_err.getvalue().splitlines() == expected
