"""`hubwatch once`: every job once as a complete check, then the outcome in a few lines."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from monitor.commands.common import (EXIT_CONFIG, EXIT_FINDINGS, EXIT_OK, EXIT_TEMPFAIL, SINK_KEYS, check_state,
                                     settings_of, setup_logging, token_rejected_line)


def cmd_once(args: argparse.Namespace) -> int:
    """Run every job once as a complete check, attempt every pending delivery, say what happened.

    Example: hubwatch once -c config.toml --wait --fail-on high

    A complete check reads every signal of every pin (refs, metadata, security scan), whatever
    cadence the daemon uses, repo by repo while the Hub's API quota covers a whole repo. --wait
    waits for the next quota window when the quota runs out (progress on stderr: pins checked /
    total, the reset time) until every pin is checked; pins still unknown get one retry at the
    end of the run. --dry-run prints the alerts that would be sent and marks nothing sent (they
    stay queued for the next real run). Ends with one line on stderr, "checked N pins: X
    changed, Y unknown, Z new findings" (and one for look-alike discovery when protected names
    are configured; --log-format json: one {"event": "summary", ...} object), preceded by a line
    saying why pins are unknown, e.g. "the Hub's API quota is spent until 14:05:12 UTC: 685 pins
    not checked (use --wait)". A line on stderr says which Hub request quota the run drew on: the
    token's (or, without one, this address's), the same a daemon with this config uses. An alert
    a receiver refused on its own (a 400) is said in a line too, whatever the exit code.
    Exit codes, first that applies: 78 the Hub rejects the token (401 Invalid credentials: a
    line names where the token came from) or a sink refused permanently (a line names the
    sink's key and its answer; `hubwatch redeliver` re-queues the alert after the fix); 1 a new
    finding reached --fail-on; 75 any pin still unknown after the retry (quota spent, transient
    errors, Hub unreachable: the line says which); else 0.
    """
    settings = settings_of(args)
    setup_logging(args, settings)
    check_state(args, settings, write=True)
    from monitor.alerts.delivery import deliver, render_pending
    from monitor.detect.findings import severity_rank
    from monitor.jobs.complete_check import complete_check
    from monitor.jobs.lookalikes import scan_lookalikes
    from monitor.jobs.roster import scan_roster
    from monitor.runtime import Runtime

    rt = Runtime.build(settings, stdout=sys.stdout)
    try:
        report = complete_check(rt, wait=getattr(args, "wait", False), progress=_progress(args))
        la_report = scan_lookalikes(rt)
        roster_new = list(scan_roster(rt).new_findings)
        new = list(report.new_findings) + list(la_report.new_findings) + roster_new
        if args.dry_run:
            render_pending(rt.store, sys.stdout)
        else:
            rt.delivery = deliver(rt.store, rt.sinks, now=rt.clock, min_interval=settings.alerts.min_interval,
                                  ignore_backoff=True)
    finally:
        rt.close()
    sys.stdout.flush()
    _outcome(args, quota_line(settings, rt), {"event": "hub_quota"}, level="info")
    dead = _dead_letters_line(rt)
    if dead is not None:  # said whatever the exit code: an alert refused for good is never silent
        _outcome(args, *dead, level="warning")
    # Problems first, each with its own line; the summary line always comes last.
    codes: set[int] = set()
    for check in ONCE_PROBLEMS:
        problem = check(settings, report, rt)
        if problem is not None:
            codes.add(problem[0])
            _outcome(args, problem[1], problem[2])
    _once_summary(args, settings, report, la_report, len(roster_new))
    if args.fail_on and any(severity_rank(f.severity) >= severity_rank(args.fail_on) for f in new):
        codes.add(EXIT_FINDINGS)
    return once_exit(codes)


# Exit codes of `once`, in precedence: the first one present wins (a new reason, e.g. a sink that
# refused permanently, adds its code to the set it returns; the order is decided here only).
ONCE_EXIT_PRECEDENCE = (EXIT_CONFIG, EXIT_FINDINGS, EXIT_TEMPFAIL)


def once_exit(codes: set[int]) -> int:
    """78 (configuration or token rejected) before 1 (--fail-on) before 75 (pins unknown), else 0."""
    return next((c for c in ONCE_EXIT_PRECEDENCE if c in codes), EXIT_OK)


def _progress(args: argparse.Namespace):
    """--wait's progress on stderr: pins checked / total and when the quota window resets."""
    def show(done: int, total: int, until) -> None:
        from monitor.logs import json_record

        line = (f"{done}/{total} pins checked; the Hub's API quota is spent until "
                f"{until.strftime('%H:%M:%S')} UTC, waiting")
        print(json_record(line, "info", event="quota_wait", checked=done, total=total, until=until.isoformat())
              if args.log_format == "json" else f"hubwatch: {line}", file=sys.stderr, flush=True)
    return show


def _once_unchecked(settings, report, rt) -> tuple[int, str, dict] | None:
    """Pins without an answer after the retry: the quota (how many, until when), or the
    transient errors met. A Hub out of reach says so on its own line instead."""
    from monitor.jobs import quota
    from monitor.jobs.summary import unreachable_reason

    if unreachable_reason(report, rt.client.stats) is not None:
        return None
    left = [o for o in report.outcomes if o.status in ("deferred", "unknown", "error")]
    if not left:
        return None
    spent = [o for o in left if o.status == "deferred" or quota.is_quota(o.error)]
    if spent:
        until = quota.reset_at(rt.client)
        pins = sum(o.pins for o in left)
        return EXIT_TEMPFAIL, quota.quota_line(until, pins), {
            "event": "quota_spent", "until": until.isoformat(), "pins_not_checked": pins}
    errors = sorted({(o.error or "internal error")[:200] for o in left})
    pins = sum(o.pins for o in left)
    shown = "; ".join(errors[:3]) + (f" and {len(errors) - 3} more" if len(errors) > 3 else "")
    return EXIT_TEMPFAIL, f"{pins} pins unknown after a retry: {shown}", {
        "event": "pins_unknown", "pins": pins, "errors": errors[:10]}


def _once_unreachable(settings, report, rt) -> tuple[int, str, dict] | None:
    from monitor.jobs.summary import endpoint_host, unreachable_line, unreachable_reason

    reason = unreachable_reason(report, rt.client.stats)
    if reason is None:
        return None
    return EXIT_TEMPFAIL, unreachable_line(settings.hub.endpoint, reason), {
        "event": "hub_unreachable", "endpoint": endpoint_host(settings.hub.endpoint), "reason": reason}


def _once_token_rejected(settings, report, rt) -> tuple[int, str, dict] | None:
    """A configuration problem: it comes before "findings" and "all unknown"."""
    if not (report.token_rejected or rt.client.stats.token_rejected()):  # the pins, or a later job
        return None
    from monitor.detect.token import token_origin

    return EXIT_CONFIG, token_rejected_line(settings), {
        "event": "token_rejected", "token_source": token_origin(settings.hub.token_source)}


def _once_sink_refused(settings, report, rt) -> tuple[int, str, dict] | None:
    """A sink refused permanently (now, or it is still dead from an earlier run): a configuration
    problem (78), one line naming each sink's config key and what its receiver answered."""
    refused = rt.delivery.refused if rt.delivery is not None else {}
    if not refused:
        return None
    parts = [f"sink {name} ({SINK_KEYS.get(name, name)}) refused permanently: {answer}"
             for name, answer in refused.items()]
    return EXIT_CONFIG, ("; ".join(parts) + ": its alerts are dead-lettered or waiting; fix the URL, then "
                         "run `hubwatch redeliver --all`"), {
        "event": "sink_refused", "sinks": {n: {"key": SINK_KEYS.get(n, n), "answer": a} for n, a in refused.items()}}


def _dead_letters_line(rt) -> tuple[str, dict] | None:
    """Alerts a receiver refused one by one (a 400: that message only, the sink still works)."""
    report = rt.delivery
    if report is None:
        return None
    single = {name: r.dead for name, r in report.per_sink.items() if r.dead and not r.refused}
    if not single:
        return None
    parts = ", ".join(f"{n} by sink {name} ({SINK_KEYS.get(name, name)})" for name, n in single.items())
    return (f"{sum(single.values())} alert(s) dead-lettered: {parts}: `hubwatch status` lists them, "
            "`hubwatch redeliver` re-sends them"), {"event": "dead_letters", "per_sink": single}


def quota_line(settings, rt) -> str:
    """Which Hub request quota a manual run drew on: the token's (per account), else the address's."""
    from monitor.detect.token import token_origin

    snap = rt.client.budget.snapshot()
    whose = (f"the token from {token_origin(settings.hub.token_source)}" if settings.hub.token is not None
             else "this host's address (no token)")
    return (f"Hub quota: this run drew on {whose}, the same quota a hubwatch daemon with this config uses: "
            f"{rt.client.stats.requests} requests made, {snap.remaining} of {snap.quota} left in this 5-minute window")


# `hubwatch once` outcome checks, most decisive first: (settings, ScanReport, Runtime) ->
# (exit code, plain line, JSON object) or None. Exit precedence (once_exit): 78, then 1, then 75.
ONCE_PROBLEMS: list[Callable] = [_once_token_rejected, _once_sink_refused, _once_unreachable, _once_unchecked]


def _outcome(args: argparse.Namespace, line: str, obj: dict, level: str = "error") -> None:
    """One outcome line on stderr: plain text, or a JSON object with --log-format json. The line may
    quote the Hub (an error's X-Request-Id): on a terminal it goes through `findings`' escaping."""
    from monitor.alerts.render import terminal
    from monitor.logs import json_record

    print(json_record(line, level, **obj) if args.log_format == "json" else f"hubwatch: {terminal(line)}",
          file=sys.stderr, flush=True)


def _once_summary(args, settings, report, la_report, roster_findings: int = 0) -> None:
    from monitor.jobs.summary import lookalike_fields, lookalike_line, pin_counts, summary_line
    from monitor.logs import json_record

    counts = pin_counts(report)
    discovery = bool(settings.lookalike.protected)
    others = len(la_report.new_findings) + roster_findings  # Z counts every new finding of the run
    line = summary_line(counts, others)
    if args.log_format == "json":
        obj = {"event": "summary", "checked": counts.checked, "changed": counts.changed,
               "unknown": counts.unknown, "new_findings": counts.new_findings + others,
               "pin_findings": counts.new_findings}
        if discovery:
            obj["lookalikes"] = lookalike_fields(la_report)
        print(json_record(line, **obj), file=sys.stderr, flush=True)
        return
    print(line, file=sys.stderr)
    if discovery:
        print(lookalike_line(la_report), file=sys.stderr)
    sys.stderr.flush()
