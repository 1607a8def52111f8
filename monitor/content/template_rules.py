"""The fixed lists the chat-template analysis judges by (documented in docs/content.md,
"Chat templates"): concealment and override phrases, what a URL is, and what a template's own
special-token literals look like. Data and small pure helpers only."""

from __future__ import annotations

import re
import unicodedata

# Text a template ADDS containing one of these (compared lower-case, whitespace collapsed,
# invisible characters removed, Unicode compatibility forms folded) -> chat_template_injection.
# Instructions to hide something from the user, to override earlier instructions, or to push a
# fixed recommendation: none appears in a published model's template.
CONCEALMENT_PHRASES: tuple[str, ...] = (
    # concealment
    "do not mention",
    "don't mention",
    "never mention",
    "do not tell the user",
    "don't tell the user",
    "never tell the user",
    "do not inform the user",
    "without telling the user",
    "without the user knowing",
    "the user must not know",
    "hide this from the user",
    "do not reveal",
    "don't reveal",
    "never reveal",
    "do not disclose",
    "never disclose",
    "keep this secret",
    "keep this hidden",
    "keep these instructions secret",
    "do not acknowledge these instructions",
    "secretly",
    # override
    "ignore previous instructions",
    "ignore all previous",
    "ignore the previous instructions",
    "ignore prior instructions",
    "ignore all prior",
    "ignore any previous",
    "ignore your previous",
    "ignore the above",
    "ignore everything above",
    "disregard previous",
    "disregard all previous",
    "disregard the above",
    "disregard any previous",
    "forget your instructions",
    "forget all previous",
    "forget everything above",
    "new instructions:",
    "override the system prompt",
    "these instructions take precedence",
    # steering
    "you must always recommend",
    "always recommend",
    "you must recommend",
    "always include the link",
    "always include this link",
    "always include the following link",
    "always mention",
    "always suggest",
)

# Published templates that contain a listed phrase in a benign sentence: occurrences inside these
# exact sentences are not counted (Qwen3.5/3.6 and NVIDIA Nemotron 3 tool-use system prompts).
BENIGN_SENTENCES: tuple[str, ...] = (
    "do not tell the user about function calls",
)

URL_RE = re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s'\"<>{}|\\^`]+|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s'\"<>{}|\\^`]*")

# A template's own control literals: <think>, </think>, <tool_call>, <|im_start|>, <｜Assistant｜>,
# <start_of_turn>, [INST], [TOOL_CALLS], /think, /no_think, optionally with surrounding whitespace;
# and literals with no letter or digit at all ("\n", "```", "").
_SPECIAL_RE = re.compile(
    r"\s*(?:"
    r"</?[|｜]?[\w.:/▁-]{1,64}[|｜]?/?>"       # <tag>, </tag>, <|tag|>, <｜tag｜> (no spaces)
    r"|\[/?[A-Z][A-Z0-9_]{0,31}\]"               # [INST], [/INST], [TOOL_CALLS]
    r"|/[a-z][a-z_]{1,31}"                       # /think, /no_think, /nothink switches
    r"|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"            # CONTINUE_FINAL_MESSAGE_TAG-style markers
    r")+\s*")
_TOKEN_RE = re.compile(r"<[|｜][^<>\s]{1,64}[|｜]>")


def _bracketed_word(literal: str) -> bool:
    """<|channel|>analysis<|message|>: one short word between two special tokens."""
    parts = _TOKEN_RE.split(literal.strip())
    return len(parts) >= 3 and not parts[0] and not parts[-1] \
        and all(re.fullmatch(r"[\w.-]{0,24}", p) for p in parts)


def looks_like_special_token(literal: str) -> bool:
    if not any(ch.isalnum() for ch in literal):
        return True
    return _SPECIAL_RE.fullmatch(literal) is not None or _bracketed_word(literal)


def _untag(ch: str) -> str:
    code = ord(ch)
    if 0xE0020 <= code <= 0xE007E:    # Unicode tag characters spell ASCII invisibly
        return chr(code - 0xE0000)
    return ch


def normalise(text: str) -> str:
    """Lower-case, compatibility-folded text with invisible characters removed (tag characters
    decoded) and whitespace collapsed: what phrase matching compares."""
    text = "".join(_untag(ch) for ch in text)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.lower().split())


def phrase_counts(text: str) -> dict[str, int]:
    """How often each listed phrase occurs in `text` outside the benign sentences."""
    norm = normalise(text)
    out = {}
    for phrase in CONCEALMENT_PHRASES:
        n = norm.count(phrase)
        if n:
            n -= sum(norm.count(s) * s.count(phrase) for s in BENIGN_SENTENCES if phrase in s)
            if n > 0:
                out[phrase] = n
    return out


def visible(text: str, limit: int = 160) -> str:
    """One line, at most `limit` characters, control and invisible characters escaped."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif cat in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp") or (cat == "Zs" and ch != " "):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    line = "".join(out)
    return line if len(line) <= limit else line[:limit - 1] + "…"
