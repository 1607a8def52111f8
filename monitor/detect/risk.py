"""File-risk rules: which changes to a model repo can execute code on the consumer's machine.

Pickle-family weights run arbitrary code when loaded; code files and `auto_map` entries run
with `trust_remote_code=True`; swapping safetensors for pickle is the PoisonGPT-style move.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from monitor.detect.findings import severity_rank

PICKLE_EXTS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
CODE_EXTS = (".py", ".sh", ".bat", ".ps1", ".exe", ".dll", ".so", ".dylib", ".js", ".cmd")
CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


@dataclass(frozen=True)
class ContentRules:
    """What content inspection brings to `assess` (built by detect/content.py): the rules it
    fired, the files whose bytes said pickle under another name, and the pickle files whose
    every global is allowlisted (path -> number of globals)."""

    hits: tuple["RuleHit", ...] = ()
    sniffed: tuple[str, ...] = ()
    clean: Any = None  # Mapping[str, int]

    def allowlisted(self, pickles: Sequence[str]) -> int | None:
        """Globals counted when every file in `pickles` was inspected and is all allowlisted."""
        clean = self.clean or {}
        if not all(p in clean for p in pickles):
            return None
        return sum(clean[p] for p in pickles)


@dataclass(frozen=True)
class RuleHit:
    rule: str
    severity: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "detail": self.detail}


def runs_code_on_load(path: str) -> bool:
    """A pickle-format weight or a code file: loading the repo can run code on the machine."""
    ext = _ext(path)
    return ext in PICKLE_EXTS or ext in CODE_EXTS


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind("."):] if "." in name else ""


def _list(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def config_watch_paths(paths: Sequence[str]) -> list[str]:
    """Which changed files are configs whose content we must read to spot remote code."""
    return [p for p in paths if p.rsplit("/", 1)[-1] in CONFIG_FILES]


def inspection_order(configs: Sequence[str], added: Sequence[str]) -> list[str]:
    """Configs in the order a capped check reads them, so the ones transformers loads come first:
    the top-level config.json, the other top-level configs, configs next to an added code file
    (an `auto_map` pair), then the rest shallowest first. However many files a commit adds, the
    remote-code change that matters is read within the cap."""
    code_dirs = {p.rpartition("/")[0] for p in added if _ext(p) in CODE_EXTS}

    def rank(path: str) -> tuple:
        folder, _, name = path.rpartition("/")
        return (path != "config.json", bool(folder), folder not in code_dirs, path.count("/"), path)

    return sorted(configs, key=rank)


def not_inspected(reasons: Sequence[str]) -> RuleHit | None:
    """A cap cut the inspection short: the change is high at least, and says what went unread."""
    if not reasons:
        return None
    return RuleHit("not_inspected", "high", "not inspected: " + "; ".join(reasons))


def remote_code_entries(config_text: str | None) -> dict[str, Any]:
    """The remote-code entries of a config file (empty when absent or unparsable)."""
    if not config_text:
        return {}
    try:
        data = json.loads(config_text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in REMOTE_CODE_KEYS if k in data}


def assess(added: Sequence[str], removed: Sequence[str], modified: Sequence[str],
           configs: dict[str, tuple[str | None, str | None]] | None = None,
           uninspected: Sequence[str] = (), content: "ContentRules | None" = None) -> tuple[RuleHit, ...]:
    """Rules fired by one change, most severe first. `configs` maps a config path to its (old, new)
    text; `uninspected` says what a cap left unread (a `not_inspected` hit, high); `content` is what
    inspecting the files found (detect/content.py): then a pickle change whose globals are all
    allowlisted is medium, and the content rules join."""
    hits: list[RuleHit] = []
    changed = list(added) + list(modified)
    pickles = [p for p in changed if _ext(p) in PICKLE_EXTS]
    if content is not None:
        pickles += [p for p in content.sniffed if p in changed and p not in pickles]
    code = [p for p in changed if _ext(p) in CODE_EXTS]
    removed_st = [p for p in removed if _ext(p) == ".safetensors"]
    if removed_st and [p for p in added if _ext(p) in PICKLE_EXTS]:
        hits.append(RuleHit("safetensors_replaced_by_pickle", "critical",
                            f"removes {_list(removed_st)} and adds pickle {_list(pickles)}"))
    allowlisted = content.allowlisted(pickles) if content is not None and pickles else None
    if allowlisted is not None:
        hits.append(RuleHit("pickle_file_changed", "medium",
                            f"adds or changes pickle-format file(s) {_list(pickles)} "
                            f"(inspected: {allowlisted} globals, all allowlisted)"))
    elif pickles:
        hits.append(RuleHit("pickle_file_changed", "high",
                            f"adds or changes pickle-format file(s) {_list(pickles)} (code runs on load)"))
    if code:
        hits.append(RuleHit("code_file_changed", "high", f"adds or changes executable/code file(s) {_list(code)}"))
    for path, (old, new) in sorted((configs or {}).items()):
        before, after = remote_code_entries(old), remote_code_entries(new)
        if after and after != before:
            keys = ", ".join(sorted(after))
            hits.append(RuleHit("remote_code_config", "critical",
                                f"{path} adds or changes {keys} (custom code runs with trust_remote_code)"))
    if content is not None:
        hits += content.hits
    skipped = not_inspected(uninspected)
    if skipped is not None:
        hits.append(skipped)
    # stable: within a severity, the rules keep the order above (not_inspected last)
    return tuple(sorted(hits, key=lambda h: -severity_rank(h.severity)))
