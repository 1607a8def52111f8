"""hubwatch command line: argparse wiring and exit codes only; the work lives in the library.

Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage, 75 temporary failure, 78 config error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import textwrap
from typing import Callable, Sequence

from monitor import __version__
from monitor import config as config_mod
from monitor.errors import ConfigError, HubwatchError, UsageError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_CONFIG = 0, 1, 2, 75, 78
log = logging.getLogger("hubwatch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit(2) is right; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"hubwatch: error: {message}\n")


def _fatal(code: int, message: str) -> int:
    """The one place the CLI reports a fatal error: one line on stderr, an exit code."""
    print(f"hubwatch: {message}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace):
    return config_mod.load(config_mod.config_path(args.config))


def _logging(args: argparse.Namespace, settings=None) -> None:
    from monitor import logs

    logs.configure(args.verbose, args.log_format, settings.secrets() if settings else ())


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground (systemd runs this).

    Example: hubwatch run -c /etc/hubwatch/config.toml

    Schedules the pin scan (every [pins] every), alert delivery and, when configured, the
    look-alike scan (with the republished-repo watch) and the roster watch. SIGTERM finishes running jobs and exits 0; SIGHUP reloads the config
    (an invalid new config is logged and the old one kept).
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.daemon import Daemon

    return Daemon(settings, config_mod.config_path(args.config), args).run()


def cmd_once(args: argparse.Namespace) -> int:
    """Run every job once as a complete check, attempt every pending delivery, exit 0.

    Example: hubwatch once -c config.toml --dry-run

    A complete check reads every signal of every pin (refs, metadata, security scan), whatever
    cadence the daemon uses. --dry-run prints the alerts that would be sent and marks nothing
    sent (they stay queued for the next real run). When the Hub rejects the token (401 Invalid
    credentials), a line says so, naming where the token came from, and the exit code is 78.
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.alerts.delivery import deliver, render_pending
    from monitor.detect.findings import severity_rank
    from monitor.jobs.lookalikes import scan_lookalikes
    from monitor.jobs.pins import scan_pins
    from monitor.jobs.roster import scan_roster
    from monitor.runtime import Runtime

    rt = Runtime.build(settings, stdout=sys.stdout)
    try:
        report = scan_pins(rt, complete=True)
        if report.token_rejected:
            print(_token_rejected_line(settings), file=sys.stderr)
        new = list(report.new_findings) + list(scan_lookalikes(rt).new_findings)
        new += scan_roster(rt).new_findings
        if args.dry_run:
            render_pending(rt.store, sys.stdout)
        else:
            deliver(rt.store, rt.sinks, now=rt.clock, min_interval=settings.alerts.min_interval,
                    ignore_backoff=True)
    finally:
        rt.close()
    if report.token_rejected:  # a configuration problem: before "findings" and "all unknown"
        return EXIT_CONFIG
    if args.fail_on and any(severity_rank(f.severity) >= severity_rank(args.fail_on) for f in new):
        return EXIT_FINDINGS
    return EXIT_OK


def _token_rejected_line(settings) -> str:
    source = settings.hub.token_source or "no configured token"
    return (f"hubwatch: the Hub rejected the token from {source} (401 Invalid credentials in "
            f"Authorization header): pins cannot be checked until it is replaced")


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration; exit 0, or 78 with one line naming the file, key and problem.

    Example: hubwatch check-config -c /etc/hubwatch/config.toml
    """
    settings = _settings(args)
    sinks = [n for n, v in (("slack", settings.slack_webhook_url), ("webhook", settings.webhook_url)) if v]
    print(f"{settings.path}: ok — {len(settings.pin)} pin(s), sinks: {', '.join(sinks) or 'stdout'}, "
          f"state: {settings.state_path}, token: {'set' if settings.hub.token else 'none'}")
    return EXIT_OK


def cmd_findings(args: argparse.Namespace) -> int:
    """List the findings recorded in the state database, oldest first.

    Example: hubwatch findings --json --kind tag_moved

    --json prints one object per line with kind, severity, subject, summary, evidence,
    fingerprint, first_seen (ISO 8601 UTC).
    """
    settings = _settings(args)
    from monitor.store import Store

    store = Store.open(settings.state_path)
    try:
        rows = store.findings(kind=args.kind)
    finally:
        store.close()
    for row in rows:
        if args.json:
            print(json.dumps(row.to_json_dict(), sort_keys=True))
        else:
            f = row.finding
            print(f"{row.to_json_dict()['first_seen']}  {f.severity:<8} {f.kind:<20} {f.subject}: "
                  f"{f.summary.replace(chr(10), ' ')}")
    return EXIT_OK


def _lookalike_settings(args: argparse.Namespace):
    """lookup/screen work without a config file too (no protected names then) unless -c was given."""
    path = config_mod.config_path(args.config)
    if args.config is None and not path.exists():
        return None
    return config_mod.load(path)


def cmd_lookup(args: argparse.Namespace) -> int:
    """Ask the Hub now whether NAME is a legitimate org or an impostor of a protected one.

    Example: hubwatch lookup EleuterAI --json

    Prints whether the namespace exists, what it is, which protected names it imitates and how
    (techniques, similarity), which protected repos it republishes, and a risk with its reasons.
    Counts the Hub does not publish are unknown (null). --json prints one object with name,
    exists, kind, verified, created_at, followers, models, imitates, risk, reasons. Exit 0
    whatever the verdict; 2 for an invalid name; 75 when the Hub could not answer.
    """
    from monitor.detect.names import validate_name

    problem = validate_name(args.name)
    if problem:
        raise UsageError(f"invalid name {args.name[:100]!r}: {problem}")
    settings = _lookalike_settings(args)
    _logging(args, settings)
    from datetime import datetime, timezone  # not monitor.runtime.utcnow: runtime loads the store

    from monitor.config import HubSettings
    from monitor.hub.client import HubClient
    from monitor.jobs.lookup import lookup_now, render_text

    hub_settings = settings.hub if settings else HubSettings(endpoint=os.environ.get("HF_ENDPOINT",
                                                                                    config_mod.DEFAULT_ENDPOINT))
    la = settings.lookalike if settings else config_mod.LookalikeSettings()
    result = lookup_now(HubClient(hub_settings), la, args.name, datetime.now(timezone.utc))
    print(json.dumps(result.to_json(), sort_keys=True) if args.json else render_text(result))
    return EXIT_OK


def cmd_screen(args: argparse.Namespace) -> int:
    """Screen names offline (no Hub requests) against the protected names in the config.

    Example: hubwatch screen new-orgs.txt --json

    One name per line from FILE or standard input (-); blank lines and # comments are skipped.
    Prints only the names that imitate a protected name (--json: one object per line with name,
    target, techniques, score). Invalid names are reported on stderr and never stop the run.
    """
    # Offline: the engine alone, not monitor.jobs (which loads the Hub client stack).
    from monitor.detect.lookalike import Screener
    from monitor.screen import screen_stream

    settings = _lookalike_settings(args)
    la = settings.lookalike if settings else config_mod.LookalikeSettings()
    if not la.protected:
        raise UsageError("no protected names: set [lookalike] protected = [...] in the config")
    screener = Screener(la.protected, la.allow)
    if args.file in (None, "-"):
        screen_stream(sys.stdin, screener, sys.stdout, sys.stderr, as_json=args.json)
    else:
        try:
            with open(args.file, encoding="utf-8", errors="replace") as fh:
                screen_stream(fh, screener, sys.stdout, sys.stderr, as_json=args.json)
        except OSError as e:
            raise UsageError(f"cannot read {args.file}: {e.strerror or e}") from None
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Manage the Hub webhook that gives hubwatch real-time events (needs a Hub token).

    Example: hubwatch webhooks install --url https://hubwatch.example.org/hooks/hub
             hubwatch webhooks list

    install registers one webhook watching every pinned repo and protected org, signed with
    [hub_webhook] secret_file, pointed at PUBLIC_URL (the daemon's /hooks/hub reached from the
    internet); running it again updates that webhook in place. Polling stays as the safety net.
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.hub import webhooks

    if settings.hub.token is None:
        raise ConfigError(str(settings.path), "hub.token_file", "webhooks need a Hub token (or set HF_TOKEN)")
    if args.action == "install":
        if not args.url or not args.url.startswith(("https://", "http://")):
            raise UsageError("webhooks install needs --url PUBLIC_URL (http or https)")
        if settings.hub_webhook_secret is None:
            raise ConfigError(str(settings.path), "hub_webhook.secret_file",
                              "a webhook secret is required so events can be verified")
        hook = webhooks.install(settings, args.url)
        print(f"{'created' if hook.created else 'updated'} webhook {hook.id} -> {hook.url}: "
              f"{len(hook.watched)} watched item(s), domains {', '.join(hook.domains)}")
        return EXIT_OK
    for hook in webhooks.list_webhooks(settings):
        watched = ", ".join(f"{t}:{n}" for t, n in hook.watched)
        print(f"{hook.id}  {hook.url}  {'disabled' if hook.disabled else 'enabled'}  [{watched}]")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "once": cmd_once,
    "check-config": cmd_check_config,
    "findings": cmd_findings,
    "lookup": cmd_lookup,
    "screen": cmd_screen,
    "webhooks": cmd_webhooks,
}


def _help(fn: Callable) -> tuple[str, str]:
    doc = textwrap.dedent(fn.__doc__ or "").strip()
    first, _, rest = doc.partition("\n")
    return first, textwrap.dedent(rest).strip()


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="CONFIG",
                        help="config file (default: $HUBWATCH_CONFIG, else /etc/hubwatch/config.toml)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v, -vv)")
    common.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    parser = _Parser(prog="hubwatch", formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Guard your use of the Hugging Face Hub: alert on silent changes to pinned models and\n"
        "datasets, and on look-alike namespaces of the orgs you protect.\n\n"
        "Exit codes: 0 ok, 1 findings (--fail-on), 2 usage, 75 temporary failure, 78 config error."))
    parser.add_argument("--version", action="version", version=f"hubwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    subs = {}
    for name, fn in COMMANDS.items():
        summary, body = _help(fn)
        subs[name] = sub.add_parser(name, parents=[common], help=summary, description=f"{summary}\n\n{body}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    subs["once"].add_argument("--dry-run", action="store_true", help="print alerts instead of sending them")
    subs["once"].add_argument("--fail-on", choices=("info", "low", "medium", "high", "critical"),
                              help="exit 1 when a new finding has at least this severity")
    subs["findings"].add_argument("--json", action="store_true", help="one JSON object per line")
    subs["findings"].add_argument("--kind", metavar="K", help="only findings of this kind")
    subs["lookup"].add_argument("name", metavar="NAME", help="an org or user name")
    subs["lookup"].add_argument("--json", action="store_true", help="one JSON object")
    subs["screen"].add_argument("file", metavar="FILE", nargs="?", help="names file, or - for stdin (default)")
    subs["screen"].add_argument("--json", action="store_true", help="one JSON object per match")
    subs["webhooks"].add_argument("action", choices=("install", "list"), help="install or list")
    subs["webhooks"].add_argument("--url", metavar="PUBLIC_URL", help="where the Hub should POST events")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as e:
        return _fatal(EXIT_CONFIG, str(e))
    except UsageError as e:
        return _fatal(EXIT_USAGE, str(e))
    except HubwatchError as e:
        return _fatal(EXIT_TEMPFAIL if not e.permanent else EXIT_USAGE, str(e))
    except sqlite3.Error as e:
        return _fatal(EXIT_TEMPFAIL, f"state database: {e}")
    except OSError as e:
        return _fatal(EXIT_TEMPFAIL, f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")
    except KeyboardInterrupt:
        return 130
