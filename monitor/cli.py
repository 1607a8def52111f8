"""hubwatch command line: argparse wiring and exit codes only; the work lives in the library.

Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage, 75 temporary failure, 78 config error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import textwrap
from typing import Callable, Sequence

from monitor import __version__
from monitor import config as config_mod
from monitor.errors import ConfigError, HubwatchError, StateError, UsageError

from monitor.commands.common import EXIT_CONFIG, EXIT_OK, EXIT_TEMPFAIL, EXIT_USAGE, check_state, hub_and_lookalike
from monitor.commands.common import lookalike_settings as _lookalike_settings
from monitor.commands.common import settings_of as _settings
from monitor.commands.common import setup_logging as _logging
from monitor.commands.once import cmd_once
from monitor.commands.outbox import add_arguments as _outbox_arguments
from monitor.commands.outbox import cmd_redeliver, cmd_test_sink
from monitor.commands.refs import add_arguments as _refs_arguments
from monitor.commands.refs import cmd_refs
log = logging.getLogger("hubwatch")


class _Parser(argparse.ArgumentParser):
    intermixed = False  # a command may take PATHs after its options (pre-commit appends file names)

    def error(self, message: str):  # argparse's own exit(2) is right; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"hubwatch: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):
        if self.intermixed and not getattr(self, "_intermixing", False):
            self._intermixing = True  # parse_known_intermixed_args calls back into this method
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._intermixing = False
        return super().parse_known_args(args, namespace)


def _fatal(code: int, message: str) -> int:
    """The one place the CLI reports a fatal error: one line on stderr, an exit code. The message
    may quote the Hub (an error's X-Request-Id): it goes through the terminal escaping `findings` uses."""
    from monitor.alerts.render import terminal

    print(f"hubwatch: {terminal(message)}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon in the foreground (systemd runs this).

    Example: hubwatch run -c /etc/hubwatch/config.toml

    Schedules the pin scan (every [pins] every), alert delivery and, when configured, the
    look-alike scan (with the republished-repo watch), the roster watch and the daily digest.
    SIGTERM finishes running jobs and exits 0; SIGHUP reloads the config (an invalid new config
    is logged and the old one kept). Before starting it checks the config and the state
    database: exit 78 for what a restart cannot fix (a config error; a database that is empty,
    another program's, corrupt, of a newer schema, owned by another user, not accessible, or in
    a missing or read-only folder), 75 for what may pass (locked, disk full, I/O error).
    --new-state accepts an empty database file. Logs one INFO line per scan cycle (pins checked,
    changed, unknown, Hub requests, budget left) and per delivery batch; -q hides them,
    --log-format json makes them JSON objects.
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.config_warnings import warnings as config_warnings

    life = logging.getLogger("hubwatch.lifecycle")
    # 78 / 75 before anything starts: see store/preflight.py
    check_state(args, settings, write=True, say=life.info, lock_probe=True)
    for line in config_warnings(settings):  # no ExecStartPre=check-config: the journal shows them here
        life.warning(line)
    from monitor.daemon import Daemon

    return Daemon(settings, config_mod.config_path(args.config), args).run()


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration; exit 0, or 78 with one line naming the file, key and problem.

    Example: hubwatch check-config -c /etc/hubwatch/config.toml

    Prints the absolute state database path. Warns (one line each on stderr, exit still 0) about
    what is valid but likely a surprise: a non-loopback [http] listen without http.token_file, a
    secret written inline in a config group or others can read, stdout as the only sink under
    systemd, a duration written as a bare number (seconds), and a secret file readable by group or
    others or a symlink leading out of the credentials directory.
    """
    settings = _settings(args)
    from monitor.config_warnings import warnings as config_warnings

    print(f"{settings.path}: ok — {len(settings.pin)} pin(s), sinks: {', '.join(settings.sink_names())}, "
          f"state: {settings.state_path}, token: {'set' if settings.hub.token else 'none'}")
    for line in config_warnings(settings):
        print(f"hubwatch: warning: {line}", file=sys.stderr)
    return EXIT_OK


def cmd_findings(args: argparse.Namespace) -> int:
    """List the findings recorded in the state database, oldest first.

    Example: hubwatch findings --json --kind tag_moved

    Acknowledged findings (hubwatch ack) are hidden unless --all. --json prints one object per
    line with kind, severity, subject, summary, evidence, fingerprint, first_seen (ISO 8601 UTC),
    acked_at, ack_note and acked_by (null unless acknowledged). --kind with a kind that does not
    exist exits 2 and lists the kinds. Reads the database read-only and never creates it.
    """
    settings = _settings(args)
    from monitor.alerts.render import terminal
    from monitor.detect.findings import KINDS
    from monitor.store import Store

    if not check_state(args, settings, write=False).exists:
        print(f"hubwatch: no state database at {settings.state_path} yet: nothing recorded", file=sys.stderr)
        store = None
    else:
        store = Store.open_readonly(settings.state_path)
    if args.kind is not None:
        known = set(KINDS) | (store.kinds() if store is not None else set())
        if args.kind not in known:
            if store is not None:
                store.close()
            raise UsageError(f"no finding kind {args.kind[:80]!r}; kinds: {', '.join(sorted(known))}")
    if store is None:
        return EXIT_OK
    try:
        rows = store.findings(kind=args.kind, include_acked=args.all)
    finally:
        store.close()
    for row in rows:
        if args.json:
            print(json.dumps(row.to_json_dict(), sort_keys=True))
        else:  # Hub text on a terminal: no escape sequence may reach it (terminal() strips them)
            f = row.finding
            # The fingerprint is what `hubwatch ack` takes.
            print(f"{row.to_json_dict()['first_seen']}  {f.severity:<8} {terminal(f.kind):<20} "
                  f"{terminal(f.subject)}: {terminal(f.summary.replace(chr(10), ' '))} ({terminal(f.fingerprint)})"
                  f"{' [acknowledged]' if row.acked_at else ''}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Show the state of every pin and of look-alike discovery (reads the database; no Hub request).

    Example: hubwatch status --json

    One row per pin: state (ok, pending, unknown, unreachable, unavailable, gated, disabled,
    ref_missing, revision_unreachable), when it was last checked and last answered, the tracked
    ref's head, open findings, content (clean, flagged or not_inspected, with the reason: what
    inspecting its pickles and chat templates concluded) and the last error; then one row for
    look-alike discovery (last run, candidate names covered, budget) and one for the Hub's quota
    per bucket (api, resolvers, pages: remaining, reset) as the last scan left it. --json: one
    object per line, pins with "kind": "pin" (with "last_ok_age_seconds"), discovery with
    "kind": "lookalikes", the quota with "kind": "quota"; then one row per sink that is dead or
    holds dead letters ("kind": "sink": its config key, the receiver's answer, dead letters and
    their fingerprints, alerts waiting). Safe while the daemon runs (opens the database
    read-only; never creates it).
    """
    settings = _settings(args)
    from monitor.commands.common import SINK_KEYS
    from monitor.jobs import quota
    from monitor.jobs.lookalikes import LAST_RUN
    from monitor.jobs.status import (lookalike_status, lookalike_subjects, pin_statuses, quota_status,
                                     render_lookalikes, render_pin, render_quota, render_sink, sink_rows)
    from monitor.runtime import utcnow
    from monitor.store import Store

    states: dict = {}
    contents: dict = {}
    open_counts: dict = {}
    probes: dict = {}
    last_run = hub_quota = None
    if check_state(args, settings, write=False).exists:
        store = Store.open_readonly(settings.state_path)
        try:
            states, open_counts = store.load_states(), store.open_findings_by_subject()
            contents = store.load_contents()
            probes, last_run = store.load_probes(), store.get_meta(LAST_RUN)
            found = lookalike_subjects(store.findings(kind="lookalike"))
            sinks = sink_rows(store.dead_sinks(), store.outbox_by_sink(), store.dead_letters(), SINK_KEYS)
            hub_quota = quota.stored(store)
        finally:
            store.close()
    else:
        found, sinks = {}, []
        print(f"hubwatch: no state database at {settings.state_path} yet: nothing checked", file=sys.stderr)
    rows = pin_statuses(settings.pin, states, open_counts, contents, utcnow())
    discovery = lookalike_status(settings.lookalike, probes, last_run, found)
    for row in rows:
        print(json.dumps(row.to_json(), sort_keys=True) if args.json else render_pin(row))
    if discovery is not None:
        print(json.dumps(discovery, sort_keys=True) if args.json else render_lookalikes(discovery))
    q = quota_status(hub_quota)
    if q is not None:
        print(json.dumps(q, sort_keys=True) if args.json else render_quota(q))
    for sink in sinks:
        print(json.dumps(sink, sort_keys=True) if args.json else render_sink(sink))
    return EXIT_OK


def cmd_digest(args: argparse.Namespace) -> int:
    """Send the daily digest now (the daemon sends it at [alerts] digest local time).

    Example: hubwatch digest -c config.toml --dry-run

    One message: pins watched, changes and new look-alikes in the last 24 h, pins unknown or
    unavailable now, open findings, look-alike coverage. Queued for every sink and delivered like
    an alert (a sink that is down gets it later). --dry-run prints it and queues nothing. Exit 78
    when a sink refused permanently (the line names its key and answer) or dead-lettered it, 75
    when a sink failed for now (the daemon retries it).
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.alerts.delivery import deliver
    from monitor.alerts.render_report import report_slack, report_text
    from monitor.jobs.digest import build, queue_digest
    from monitor.runtime import Runtime

    check_state(args, settings, write=not args.dry_run)
    rt = Runtime.build(settings, stdout=sys.stdout)
    try:
        if args.dry_run:
            report = build(rt, rt.clock())
            print(json.dumps(report_slack(report), indent=2, ensure_ascii=False) if "slack" in rt.sinks
                  else report_text(report))
            return EXIT_OK
        queue_digest(rt)
        result = deliver(rt.store, rt.sinks, now=rt.clock, min_interval=settings.alerts.min_interval)
    finally:
        rt.close()
    from monitor.commands.outbox import delivery_exit

    if result.refused:
        return delivery_exit(result)  # 78: the line names each refused sink's key and answer
    if result.dead:
        return _fatal(EXIT_CONFIG, f"digest queued; {result.dead} message(s) dead-lettered (refused by the "
                                   "receiver): `hubwatch status` lists them, `hubwatch redeliver --all` re-sends")
    if result.retried:
        return _fatal(EXIT_TEMPFAIL, "digest queued; a sink failed for now: the digest stays queued and is "
                                     "retried by the daemon's next delivery")
    return EXIT_OK


MAX_NOTE = 1000


def _fingerprints(values: Sequence[str]) -> list[str]:
    from monitor.triage import parse_fingerprint

    out = []
    for v in values:
        fp = parse_fingerprint(v)
        if fp is None:
            raise UsageError(f"not a finding fingerprint (32 hex digits): {v[:80]!r}")
        out.append(fp)
    return out


def _triage(args: argparse.Namespace, acking: bool) -> int:
    fps = _fingerprints(args.fingerprint)
    note = getattr(args, "note", None)
    if note is not None and (not note.strip() or len(note) > MAX_NOTE):
        raise UsageError(f"--note must be 1 to {MAX_NOTE} characters")
    settings = _settings(args)
    from datetime import datetime, timezone  # not runtime.utcnow: runtime loads the Hub client, sinks

    from monitor.store import Store
    from monitor.triage import acknowledge, cli_actor, withdraw

    check_state(args, settings, write=True)
    store = Store.open(settings.state_path)
    now, who, sinks = datetime.now(timezone.utc), cli_actor(), settings.sink_names()
    try:
        done = (acknowledge(store, fps, note, now, actor=who, sinks=sinks) if acking
                else withdraw(store, fps, now, actor=who, sinks=sinks))
    finally:
        store.close()
    for line in done:
        print(line)
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    """Acknowledge findings: hidden from `findings`, and never alerted again.

    Example: hubwatch ack 3f2a9c0e1b7d4e6f8a9b0c1d2e3f4a5b --note "checked with the vendor"

    Takes one or more fingerprints (shown in every alert and by `hubwatch findings`). An alert of
    these findings not yet delivered still goes out once, marked "acknowledged by WHO before
    delivery". Records who did it (acked_by: $HUBWATCH_ACTOR, else $SUDO_USER, else the login
    name) and posts a short notice to the sinks. A later change has a new fingerprint and alerts
    as usual. Exit 2, changing nothing, when a fingerprint is malformed or unknown.
    """
    return _triage(args, True)


def cmd_unack(args: argparse.Namespace) -> int:
    """Withdraw acknowledgements: the findings show again.

    Example: hubwatch unack 3f2a9c0e1b7d4e6f8a9b0c1d2e3f4a5b

    Records who did it, as ack does, and posts a short notice to the sinks.
    """
    return _triage(args, False)


def cmd_lookup(args: argparse.Namespace) -> int:
    """Ask the Hub now whether NAME is a legitimate org or an impostor of a protected one.

    Example: hubwatch lookup EleuterAI --json

    Prints whether the namespace exists, what it is, which protected names it imitates and how
    (techniques, similarity), which protected repos it republishes, and a risk with its reasons.
    Counts the Hub does not publish are unknown (null). --json prints one object with name,
    exists, kind, verified, created_at, followers, models, imitates, risk, reasons. Exit 0
    whatever the verdict; 2 for an invalid name; 75 when the Hub could not answer.
    """
    from monitor.detect.names import validate_hub_name

    problem = validate_hub_name(args.name)
    if problem:
        raise UsageError(f"invalid name {args.name[:100]!r}: {problem}")
    settings = _lookalike_settings(args)
    _logging(args, settings)
    from datetime import datetime, timezone  # not monitor.runtime.utcnow: runtime loads the store

    from monitor.hub.client import HubClient
    from monitor.alerts.render import terminal
    from monitor.jobs.lookup import lookup_now, render_text

    hub_settings, la = hub_and_lookalike(settings)
    result = lookup_now(HubClient(hub_settings), la, args.name, datetime.now(timezone.utc))
    print(json.dumps(result.to_json(), sort_keys=True) if args.json
          else "\n".join(terminal(line) for line in render_text(result).split("\n")))
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

    _, la = hub_and_lookalike(_lookalike_settings(args))
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
    internet; https, since the Hub sends the secret with every event: plain http only to a
    loopback address); running it again updates that webhook in place. Events only schedule
    checks of the pinned repos they name; polling stays as the safety net.
    """
    settings = _settings(args)
    _logging(args, settings)
    from monitor.alerts.render import terminal
    from monitor.hub import webhooks

    if settings.hub.token is None:
        raise ConfigError(str(settings.path), "hub.token_file", "webhooks need a Hub token (or set HF_TOKEN)")
    if args.action == "install":
        from monitor.urls import url_problem

        if not args.url:
            raise UsageError("webhooks install needs --url PUBLIC_URL (https)")
        problem = url_problem(args.url)
        if problem:  # over plain http the Hub would send our webhook secret in clear
            raise UsageError(f"webhooks install --url {problem}")
        if settings.hub_webhook_secret is None:
            raise ConfigError(str(settings.path), "hub_webhook.secret_file",
                              "a webhook secret is required so events can be verified")
        hook = webhooks.install(settings, args.url)
        # The Hub's answer (ids, URLs, names) goes through the terminal escaping `findings` uses.
        print(terminal(f"{'created' if hook.created else 'updated'} webhook {hook.id} -> {hook.url}: "
                       f"{len(hook.watched)} watched item(s), domains {', '.join(hook.domains)}"))
        return EXIT_OK
    for hook in webhooks.list_webhooks(settings):
        watched = ", ".join(f"{t}:{n}" for t, n in hook.watched)
        print(terminal(f"{hook.id}  {hook.url}  {'disabled' if hook.disabled else 'enabled'}  [{watched}]"))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "once": cmd_once,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "digest": cmd_digest,
    "findings": cmd_findings,
    "ack": cmd_ack,
    "unack": cmd_unack,
    "lookup": cmd_lookup,
    "screen": cmd_screen,
    "webhooks": cmd_webhooks,
    "refs": cmd_refs,
    "redeliver": cmd_redeliver,
    "test-sink": cmd_test_sink,
}


# The reference page each command's --help links (docs/, one subject a page; tests check each anchor).
COMMAND_DOCS: dict[str, str] = {
    "run": "docs/deployment.md#running-under-systemd",
    "once": "docs/detection.md#what-is-detected",
    "check-config": "docs/configuration.md#configuration",
    "status": "docs/triage.md#status",
    "digest": "docs/triage.md#daily-digest",
    "findings": "docs/triage.md#triage",
    "ack": "docs/triage.md#triage",
    "unack": "docs/triage.md#triage",
    "lookup": "docs/lookalikes.md#look-alike-namespaces",
    "screen": "docs/lookalikes.md#look-alike-namespaces",
    "webhooks": "docs/http-api.md#real-time-http-api-and-operations",
    "refs": "docs/refs-scan.md#know-what-we-load-refs-scan",
}


def _help(fn: Callable) -> tuple[str, str]:
    doc = textwrap.dedent(fn.__doc__ or "").strip()
    first, _, rest = doc.partition("\n")
    return first, textwrap.dedent(rest).strip()


def _example(fn: Callable) -> str | None:
    """The first line of a command's `Example:` (every command has one; test_cli_help checks)."""
    for line in textwrap.dedent(fn.__doc__ or "").splitlines():
        if line.strip().startswith("Example: "):
            return line.strip()[len("Example: "):]
    return None


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="CONFIG",
                        help="config file (default: $HUBWATCH_CONFIG, else /etc/hubwatch/config.toml)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v, -vv)")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="less log output (run: no line per scan cycle or delivery batch)")
    common.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    parser = _Parser(prog="hubwatch", formatter_class=argparse.RawDescriptionHelpFormatter, description=(
        "Guard your use of the Hugging Face Hub: alert on silent changes to pinned models and\n"
        "datasets, and on look-alike namespaces of the orgs you protect.\n\n"
        "Exit codes: 0 ok, 1 findings (--fail-on), 2 usage, 75 temporary failure, 78 config error."))
    parser.epilog = ("Examples:\n" + "\n".join(f"  {ex}" for ex in map(_example, COMMANDS.values()) if ex)
                     + "\n\nReference: README.md (a five-minute tour) and docs/, one subject a page.")
    parser.add_argument("--version", action="version", version=f"hubwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    subs = {}
    for name, fn in COMMANDS.items():
        summary, body = _help(fn)
        subs[name] = sub.add_parser(name, parents=[common], help=summary, description=f"{summary}\n\n{body}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter,
                                    epilog=f"More: {COMMAND_DOCS[name]} (in the source tree and the package's docs)"
                                    if name in COMMAND_DOCS else None)
    subs["once"].add_argument("--dry-run", action="store_true", help="print alerts instead of sending them")
    subs["once"].add_argument("--wait", action="store_true",
                              help="when the Hub's API quota runs out, wait for the next window (progress on "
                                   "stderr) until every pin is checked")
    subs["once"].add_argument("--fail-on", choices=("info", "low", "medium", "high", "critical"),
                              help="exit 1 when a new finding has at least this severity")
    for name in ("run", "once", "digest"):
        subs[name].add_argument("--new-state", action="store_true",
                                help="accept an empty state database file and start it fresh")
    subs["findings"].add_argument("--json", action="store_true", help="one JSON object per line")
    subs["findings"].add_argument("--kind", metavar="K", help="only findings of this kind")
    subs["findings"].add_argument("--all", action="store_true", help="include acknowledged findings")
    subs["status"].add_argument("--json", action="store_true", help="one JSON object per line")
    subs["digest"].add_argument("--dry-run", action="store_true", help="print the digest, queue nothing")
    for name in ("ack", "unack"):
        subs[name].add_argument("fingerprint", metavar="FINGERPRINT", nargs="+", help="a finding's fingerprint")
    subs["ack"].add_argument("--note", metavar="TEXT", help="why (who checked what); shown by findings --json")
    subs["lookup"].add_argument("name", metavar="NAME", help="an org or user name")
    subs["lookup"].add_argument("--json", action="store_true", help="one JSON object")
    subs["screen"].add_argument("file", metavar="FILE", nargs="?", help="names file, or - for stdin (default)")
    subs["screen"].add_argument("--json", action="store_true", help="one JSON object per match")
    subs["webhooks"].add_argument("action", choices=("install", "list"), help="install or list")
    subs["webhooks"].add_argument("--url", metavar="PUBLIC_URL", help="where the Hub should POST events")
    _refs_arguments(subs["refs"])
    _outbox_arguments(subs)
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
    except StateError as e:
        return _fatal(EXIT_CONFIG if e.permanent else EXIT_TEMPFAIL, str(e))
    except HubwatchError as e:
        return _fatal(EXIT_TEMPFAIL if not e.permanent else EXIT_USAGE, str(e))
    except sqlite3.Error as e:
        return _fatal(EXIT_TEMPFAIL, f"state database: {e}")
    except OSError as e:
        return _fatal(EXIT_TEMPFAIL, f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")
    except KeyboardInterrupt:
        return 130
