"""`hubwatch refs scan`: which Hub repos our code, notebooks, configs and cache load."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

from monitor.commands.common import (EXIT_CONFIG, EXIT_FINDINGS, EXIT_OK, EXIT_TEMPFAIL, hub_and_lookalike,
                                     lookalike_settings, setup_logging, token_rejected_line)
from monitor.errors import UsageError


def cmd_refs(args: argparse.Namespace) -> int:
    """Find the Hub repos our code, notebooks and configs load (refs scan), for audits and CI.

    Example: hubwatch refs scan src/ notebooks/ configs/ --fail-if unpinned,lookalike,unresolved
             hubwatch refs scan . -c config.toml --write-pins pins.toml
             hubwatch refs scan . --offline --format sarif > refs.sarif
             hubwatch refs scan --from-cache --offline --json

    Reads Python (from_pretrained, hf_hub_download, pipeline, load_dataset, SentenceTransformer,
    load_lora_weights, evaluate.load, vllm LLM, hf:// URLs ...: docs/refs-scan.md has the loader
    table), notebooks' code cells in order and YAML/JSON configs (model_name_or_path, lm-eval
    dataset_path, axolotl datasets ...), resolving constants, re-bindings, tuple unpacking,
    f-strings and defaults as a reader does. --json prints one object per reference (repo, type,
    file, line, revision, pinned, lookalike_of against [lookalike] protected or --protected and,
    unless --offline, hub_state), per unresolved call ({"unresolved": true, ...}) and per file
    that could not be inspected ({"uninspected": true, ...}); --format sarif writes SARIF 2.1.0.
    --fail-if unpinned,missing,lookalike,renamed,unknown,unresolved,uninspected,remote-code exits 1
    when an entry meets one (unpinned includes unresolved loads; 75 when the Hub could not answer).
    `# hubwatch: ignore[unpinned]` on a line and --baseline FILE (from --write-baseline) waive
    conditions; waived entries are still listed. --write-pins FILE writes [[pin]] entries
    (revision = the commit the Hub serves now, track = the referenced branch or tag, or main) for
    [pins] include = ["FILE"], under a comment with the scan time; a reference to a look-alike
    namespace is not pinned (listed on stderr) unless --allow-lookalike. --from-cache adds the
    revisions in the local Hugging Face cache.
    """
    from monitor import __version__
    from monitor.refs import cache, check, pins_file, report, sarif, walk
    from monitor.refs.report import ONLINE_CONDITIONS, Open, parse_conditions

    try:
        conditions = parse_conditions(args.fail_if) if args.fail_if is not None else ()
    except ValueError as e:
        raise UsageError(str(e)) from None
    fmt = "json" if args.json else (args.format or "text")
    if args.json and args.format not in (None, "json"):
        raise UsageError("--json is --format json: give one of them")
    if args.offline and (args.write_pins or set(conditions) & set(ONLINE_CONDITIONS)):
        raise UsageError("--write-pins and --fail-if missing/renamed/unknown need the Hub: drop --offline")
    if not args.paths and not args.from_cache:
        raise UsageError("refs scan needs PATH... or --from-cache")
    for path in args.paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise UsageError(f"no such file or directory: {path}") from None
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):  # a FIFO would block the read: refused at once
            raise UsageError(report.terminal_line(f"{path}: not a regular file"))
    known = None
    if args.baseline:
        try:
            known = report.read_baseline(Path(args.baseline).read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"--baseline {args.baseline}: {e.strerror or e}") from None
        except ValueError as e:
            raise UsageError(f"--baseline {args.baseline}: {e}") from None
    settings = lookalike_settings(args)
    setup_logging(args, settings)
    result = walk.scan(args.paths)
    refs, problems = list(result.references), list(result.problems)
    if args.from_cache:
        cached = cache.scan(Path(args.cache_dir) if args.cache_dir else cache.default_dir())
        refs, problems = refs + list(cached.references), problems + list(cached.problems)
    client, (hub, la) = None, hub_and_lookalike(settings)
    if args.protected:
        names = tuple(n.strip() for item in args.protected for n in item.split(",") if n.strip())
        la = dataclasses.replace(la, protected=tuple(dict.fromkeys(la.protected + names)))
    if not args.offline:
        from monitor.hub.client import HubClient

        client = HubClient(hub)
        client.budget.configure(settings.hub_requests_per_5min if settings else None, token=hub.token is not None)
    checked = check.check(refs, check.screener(la), client, min(8, hub.concurrency))
    opened = sorted([Open.unresolved(u) for u in result.unresolved] + [Open.problem(p) for p in problems],
                    key=lambda o: (o.file, o.cell or 0, o.line or 0))
    entries: list = [*checked, *opened]
    if known is not None:
        entries = report.apply_baseline(entries, known)
    if fmt == "sarif":
        print(json.dumps(sarif.log(entries, __version__), indent=1))
    else:
        for e in entries:
            print(json.dumps(e.to_json(), sort_keys=True) if fmt == "json" else e.to_text())
    for line in report.problem_lines(problems, result.unresolved if args.verbose else ()):
        print(line, file=sys.stderr)
    waived = sum(1 for e in entries for c in e.conditions() if not e.meets(c))
    print(report.summary(result.files, [e for e in entries if isinstance(e, report.Checked)],
                         sum(1 for o in opened if o.kind == "uninspected"), len(result.unresolved), args.verbose,
                         skipped=sum(1 for o in opened if o.kind == "skipped"), waived=waived), file=sys.stderr)
    if args.write_baseline:
        pins_file.write(Path(args.write_baseline), report.write_baseline(entries))
    unknown_pins = 0
    if args.write_pins:
        from datetime import datetime, timezone

        for c in checked:
            why = ("[[pin]] cannot watch kernels yet" if c.ref.type == "kernel" else
                   f"its revision is not resolved ({c.ref.revision_expr})" if c.ref.revision_expr is not None else None)
            if why:
                print(report.terminal_line(f"hubwatch: refs: {c.ref.file}:{c.ref.line}: {c.ref.type} {c.ref.repo}: "
                                           f"not pinned: {why}"), file=sys.stderr)
        scanned = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text, skipped, unknown_pins = pins_file.render(
            [c for c in checked if c.ref.type != "kernel" and c.ref.revision_expr is None],
            f"written by hubwatch refs scan at {scanned} (each revision is the commit the Hub served "
            f"then: the anchor a later move is judged from); load it with [pins] include = "
            f"[\"{Path(args.write_pins).name}\"]", allow_lookalike=args.allow_lookalike)
        pins_file.write(Path(args.write_pins), text)
        for line in skipped:
            print(report.terminal_line(f"hubwatch: refs: {line}"), file=sys.stderr)
    if any(c.hub is not None and c.hub.token_rejected for c in checked):  # as `once`: the config is wrong
        print(f"hubwatch: {token_rejected_line(settings, 'hub_state is unknown until it is replaced')}",
              file=sys.stderr)
        return EXIT_CONFIG
    if any(e.meets(cond) for e in entries for cond in conditions):
        return EXIT_FINDINGS
    if (set(conditions) & {"missing", "renamed"} and any(c.meets("unknown") for c in checked)) or unknown_pins:
        print("hubwatch: refs: the Hub could not answer for every repo (see hub_error): result incomplete",
              file=sys.stderr)
        return EXIT_TEMPFAIL
    return EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.intermixed = True  # `refs scan --offline -c x.toml a.py b.py`: file names after options (pre-commit)
    p.add_argument("action", choices=("scan",), help="scan")
    p.add_argument("paths", metavar="PATH", nargs="*", help="files or directories to scan")
    p.add_argument("--json", action="store_true", help="one JSON object per entry (same as --format json)")
    p.add_argument("--format", choices=("text", "json", "sarif"), help="output format (default text)")
    p.add_argument("--fail-if", metavar="CONDITIONS",
                   help="exit 1 when an entry meets one of: unpinned, missing, lookalike, renamed, unknown, "
                        "unresolved, uninspected, remote-code (comma-separated)")
    p.add_argument("--offline", action="store_true", help="no Hub requests (no hub_state)")
    p.add_argument("--protected", metavar="NAME", action="append",
                   help="a protected namespace for look-alikes, without a config (repeat or comma-separate)")
    p.add_argument("--baseline", metavar="FILE", help="conditions recorded in FILE do not fail (still listed)")
    p.add_argument("--write-baseline", metavar="FILE", help="record today's conditions in FILE for --baseline")
    p.add_argument("--write-pins", metavar="FILE", help="write [[pin]] entries for [pins] include")
    p.add_argument("--allow-lookalike", action="store_true",
                   help="--write-pins also pins references to look-alike namespaces (refused by default)")
    p.add_argument("--from-cache", action="store_true", help="add the revisions in the local Hugging Face cache")
    p.add_argument("--cache-dir", metavar="DIR", help="the cache to read (default: HF_HUB_CACHE, HF_HOME/hub)")
