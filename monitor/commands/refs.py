"""`hubwatch refs scan`: which Hub repos our code, notebooks, configs and cache load."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from monitor.commands.common import (EXIT_CONFIG, EXIT_FINDINGS, EXIT_OK, EXIT_TEMPFAIL, hub_and_lookalike,
                                     lookalike_settings, setup_logging, token_rejected_line)
from monitor.errors import UsageError


def cmd_refs(args: argparse.Namespace) -> int:
    """Find the Hub repos our code, notebooks and configs load (refs scan), for audits and CI.

    Example: hubwatch refs scan src/ notebooks/ configs/ --fail-if unpinned,lookalike
             hubwatch refs scan . -c config.toml --write-pins pins.toml
             hubwatch refs scan --from-cache --offline --json

    Reads Python (from_pretrained, hf_hub_download, snapshot_download, pipeline, load_dataset ...),
    notebooks' code cells and YAML/JSON configs (model_name_or_path ...). --json prints one
    object per reference: repo, type, file, line, revision, pinned, lookalike_of (against
    [lookalike] protected) and, unless --offline, hub_state (exists, renamed, missing, unknown)
    and renamed_to. --fail-if unpinned,missing,lookalike (also renamed, unknown) exits 1 when a
    reference meets one (75 when the Hub could not answer for one). --write-pins FILE writes
    [[pin]] entries (revision = the commit the Hub serves now, track = the referenced branch or
    tag, or main) for [pins] include = ["FILE"], under a comment with the scan time; a reference
    to a look-alike namespace is not pinned (listed on stderr) unless --allow-lookalike. --from-cache adds the revisions in the local
    Hugging Face cache (--cache-dir, else HF_HUB_CACHE). Files that cannot be parsed are reported
    on stderr, one line each, and never stop the scan.
    """
    from monitor.refs import cache, check, pins_file, report, walk
    from monitor.refs.report import ONLINE_CONDITIONS, parse_conditions

    try:
        conditions = parse_conditions(args.fail_if) if args.fail_if is not None else ()
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.offline and (args.write_pins or set(conditions) & set(ONLINE_CONDITIONS)):
        raise UsageError("--write-pins and --fail-if missing/renamed/unknown need the Hub: drop --offline")
    if not args.paths and not args.from_cache:
        raise UsageError("refs scan needs PATH... or --from-cache")
    for path in args.paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or directory: {path}")
    settings = lookalike_settings(args)
    setup_logging(args, settings)
    result = walk.scan(args.paths)
    refs, problems = list(result.references), list(result.problems)
    if args.from_cache:
        cached = cache.scan(Path(args.cache_dir) if args.cache_dir else cache.default_dir())
        refs, problems = refs + list(cached.references), problems + list(cached.problems)
    client, (hub, la) = None, hub_and_lookalike(settings)
    if not args.offline:
        from monitor.hub.client import HubClient

        client = HubClient(hub)
        client.budget.configure(settings.hub_requests_per_5min if settings else None, token=hub.token is not None)
    checked = check.check(refs, check.screener(la), client, min(8, hub.concurrency))
    for c in checked:
        print(json.dumps(c.to_json(), sort_keys=True) if args.json else c.to_text())
    for line in report.problem_lines(problems, result.unresolved if args.verbose else ()):
        print(line, file=sys.stderr)
    print(report.summary(result.files, checked, len(problems), len(result.unresolved), args.verbose),
          file=sys.stderr)
    unknown_pins = 0
    if args.write_pins:
        from datetime import datetime, timezone

        scanned = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text, skipped, unknown_pins = pins_file.render(
            checked, f"written by hubwatch refs scan at {scanned} (each revision is the commit the Hub served "
                     f"then: the anchor a later move is judged from); load it with [pins] include = "
                     f"[\"{Path(args.write_pins).name}\"]", allow_lookalike=args.allow_lookalike)
        pins_file.write(Path(args.write_pins), text)
        for line in skipped:
            print(report.one_line(f"hubwatch: refs: {line}"), file=sys.stderr)
    if any(c.hub is not None and c.hub.token_rejected for c in checked):  # as `once`: the config is wrong
        print(f"hubwatch: {token_rejected_line(settings, 'hub_state is unknown until it is replaced')}",
              file=sys.stderr)
        return EXIT_CONFIG
    if any(c.meets(cond) for c in checked for cond in conditions):
        return EXIT_FINDINGS
    if (set(conditions) & {"missing", "renamed"} and any(c.meets("unknown") for c in checked)) or unknown_pins:
        print("hubwatch: refs: the Hub could not answer for every repo (see hub_error): result incomplete",
              file=sys.stderr)
        return EXIT_TEMPFAIL
    return EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("scan",), help="scan")
    p.add_argument("paths", metavar="PATH", nargs="*", help="files or directories to scan")
    p.add_argument("--json", action="store_true", help="one JSON object per reference")
    p.add_argument("--fail-if", metavar="CONDITIONS",
                   help="exit 1 when a reference is unpinned, missing, lookalike (comma-separated; also renamed, unknown)")
    p.add_argument("--offline", action="store_true", help="no Hub requests (no hub_state)")
    p.add_argument("--write-pins", metavar="FILE", help="write [[pin]] entries for [pins] include")
    p.add_argument("--allow-lookalike", action="store_true",
                   help="--write-pins also pins references to look-alike namespaces (refused by default)")
    p.add_argument("--from-cache", action="store_true", help="add the revisions in the local Hugging Face cache")
    p.add_argument("--cache-dir", metavar="DIR", help="the cache to read (default: HF_HUB_CACHE, HF_HOME/hub)")
