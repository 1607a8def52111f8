"""`hubwatch redeliver` and `hubwatch test-sink`: recover dead letters, prove every sink works."""

from __future__ import annotations

import argparse
import sys

from monitor.commands.common import (EXIT_CONFIG, EXIT_OK, EXIT_TEMPFAIL, SINK_KEYS, check_state, settings_of,
                                     setup_logging)
from monitor.errors import SinkError, UsageError


def cmd_redeliver(args: argparse.Namespace) -> int:
    """Re-queue dead-lettered alerts after the cause is fixed, and deliver them now.

    Example: hubwatch redeliver --all

    Takes fingerprints (hubwatch status and findings show them) or --all (digests included).
    Forgets every sink's dead mark, re-queues the dead letters with a fresh retry budget and runs
    one delivery pass. Prints what was re-queued and delivered. Exit 0; 2 when a fingerprint is
    malformed or has no dead letter (nothing is changed); 78 when a sink still refuses
    permanently (the line names its key and answer); 75 when a sink failed for now (retried later
    by the daemon).
    """
    from monitor.cli import _fingerprints

    if bool(args.fingerprint) == bool(args.all):
        raise UsageError("redeliver takes FINGERPRINT... or --all")
    fps = _fingerprints(args.fingerprint) if args.fingerprint else None
    settings = settings_of(args)
    setup_logging(args, settings)
    check_state(args, settings, write=True)
    from monitor.alerts.delivery import deliver
    from monitor.runtime import Runtime

    rt = Runtime.build(settings, stdout=sys.stdout)
    try:
        if fps is not None:
            dead = {i.finding.fingerprint for i in rt.store.dead_letters() if i.finding is not None}
            missing = [fp for fp in fps if fp not in dead]
            if missing:
                raise UsageError(f"no dead letter for {', '.join(missing[:5])} (hubwatch status lists them)")
        n = rt.store.redeliver(fps)
        result = deliver(rt.store, rt.sinks, now=rt.clock, min_interval=settings.alerts.min_interval,
                         ignore_backoff=True)
    finally:
        rt.close()
    print(f"re-queued {n} dead letter(s); delivery: {result.sent} sent, {result.retried} to retry, "
          f"{result.dead} dead-lettered")
    return delivery_exit(result)


def delivery_exit(result) -> int:
    """78 when a sink refused permanently (a line each naming its key and answer), 75 when one
    failed for now, else 0."""
    if result.refused:
        for name, answer in result.refused.items():
            print(f"hubwatch: sink {name} ({SINK_KEYS.get(name, name)}) refused permanently: {answer}",
                  file=sys.stderr)
        return EXIT_CONFIG
    if result.retried:
        print("hubwatch: a sink failed for now: the daemon retries it at its next delivery", file=sys.stderr)
        return EXIT_TEMPFAIL
    return EXIT_OK


def cmd_test_sink(args: argparse.Namespace) -> int:
    """Send one harmless test message to every configured sink and print each answer.

    Example: hubwatch test-sink -c /etc/hubwatch/config.toml

    The message says it is a test and needs no action; it is sent at once, not queued. One line
    per sink: its name, config key and the receiver's answer. A sink that answers is no longer
    marked dead. Exit 0 when every sink accepted; 78 when one refused permanently (a wrong or
    revoked URL); 75 when one failed for now.
    """
    settings = settings_of(args)
    setup_logging(args, settings)
    from monitor.detect.reports import Report
    from monitor.detect.times import iso
    from monitor.runtime import build_sinks, utcnow

    now = utcnow()
    report = Report("test", {"sent_at": iso(now)}, iso(now))
    code, results = EXIT_OK, {}
    for name, sink in build_sinks(settings, sys.stdout).items():
        key = SINK_KEYS.get(name, name)
        try:
            sink.send_report(report)
        except SinkError as e:
            answer = getattr(sink, "last_answer", None) or str(e)
            results[name] = (False, answer if e.status is None else answer[answer.find("HTTP "):])
            if e.permanent:
                code = EXIT_CONFIG
            elif code == EXIT_OK:
                code = EXIT_TEMPFAIL
            print(f"{name} ({key}): {'refused' if e.permanent else 'failed for now'}: {results[name][1]}")
        else:
            results[name] = (True, getattr(sink, "last_answer", None) or "written")
            print(f"{name} ({key}): ok: {results[name][1]}")
    _forget_dead_marks(args, settings, [n for n, (ok, _) in results.items() if ok])
    return code


def _forget_dead_marks(args, settings, working: list[str]) -> None:
    """A sink that just accepted a message is alive: drop its dead mark (when a database exists)."""
    if not working:
        return
    from monitor.errors import StateError
    from monitor.store import Store

    try:
        if not check_state(args, settings, write=False).exists:
            return
    except StateError as e:  # the answers above stand; only the dead marks stay as they were
        print(f"hubwatch: dead-sink marks not cleared: {e}", file=sys.stderr)
        return
    store = Store.open(settings.state_path)
    try:
        for name in working:
            store.clear_sink_dead(name)
    finally:
        store.close()


def add_arguments(subs: dict) -> None:
    subs["redeliver"].add_argument("fingerprint", metavar="FINGERPRINT", nargs="*",
                                   help="a dead-lettered finding's fingerprint")
    subs["redeliver"].add_argument("--all", action="store_true", help="every dead letter (digests included)")
