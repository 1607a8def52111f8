"""The long-running daemon: an APScheduler 3 BlockingScheduler, signals, config reload.

Jobs coalesce (a backlog of missed runs becomes one run), never overlap (max_instances=1),
carry jitter so a fleet of hubwatch hosts does not hit the Hub in lock-step, and a job that
raises is logged and simply runs again at its next time.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from monitor import config as config_mod
from monitor import sd_notify
from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.jobs.summary import log_delivery, log_findings, log_lookalike_cycle, log_scan_cycle

log = logging.getLogger("hubwatch.daemon")
# Start-up, shutdown and reloads: INFO, shown at the default verbosity (monitor/logs.py).
life = logging.getLogger("hubwatch.lifecycle")
PRUNE_EVERY = 6 * 3600.0
EXIT_OK, EXIT_TEMPFAIL = 0, 75


class Daemon:
    def __init__(self, settings: Settings, config_path: Path, args: Any = None):
        from monitor.runtime import Runtime

        self.config_path, self.args = config_path, args
        self.stop = threading.Event()
        self.rt = Runtime.build(settings)
        self.rt.stop = self.stop
        self.heartbeat = time.monotonic()
        self.db_problem: str | None = None  # why the last job failed on the database, for /readyz
        self._unreachable = False  # in an episode of an unreachable Hub (warned once)
        self._sd_ready = False  # READY=1 sent to systemd (by the first heartbeat)
        self.scheduler = None
        self._reload_requested = threading.Event()
        self._running = 0  # jobs in flight; run() waits for 0 before closing the store
        self._idle = threading.Condition()
        self._retired: list = []  # runtimes replaced by a reload, closed once no job can hold them
        from monitor.daemon_api import DaemonApi
        from monitor.metrics import Metrics

        from monitor.jobs.events import EventGate

        self.metrics = Metrics(lambda: self.rt)
        self.events = EventGate()  # survives reloads: an event's check is never forgotten
        self.api = DaemonApi(self)
        self.http = None

    # --- jobs (each reads self.rt at run time, so a reload takes effect at the next run) ----------
    def job_scan_pins(self) -> None:
        from monitor.jobs.pins import scan_pins

        if self.stop.is_set():
            return
        deferred = self.events.take_deferred()  # Hub events whose check found the event share spent
        report = scan_pins(self.rt, first=[key for key, _ in deferred])
        self.metrics.scan(report)
        log_scan_cycle(report, self.rt.client.budget, self.rt.settings.hub.endpoint)
        self._hub_episode(report)
        new = list(report.new_findings)
        for key, claims in deferred:
            if claims:
                new += self._verify_claims(key, claims)
        if new:
            self._kick("deliver")

    def _hub_episode(self, report: Any) -> None:
        """An unreachable Hub is a WARNING once per episode (not once per cycle), and its end INFO."""
        from monitor.jobs.summary import endpoint_host, unreachable_reason

        reason = unreachable_reason(report)
        host = endpoint_host(self.rt.settings.hub.endpoint)
        if reason and not self._unreachable:
            log.warning("the Hub at %s cannot be reached (%s): every check is unknown until it answers; said "
                        "once per outage", host, reason, extra={"job": "scan_pins"})
        elif not reason and self._unreachable and report.ok:
            life.info("the Hub at %s answers again", host, extra={"job": "scan_pins"})
        self._unreachable = bool(reason) or (self._unreachable and not report.ok)

    def job_scan_lookalikes(self) -> None:
        from monitor.jobs.lookalikes import scan_lookalikes

        if self.stop.is_set():
            return
        report = scan_lookalikes(self.rt)
        self.metrics.new_findings(report.new_findings)
        log_findings(report.new_findings, "scan_lookalikes")
        log_lookalike_cycle(report, self.rt.client.budget)
        if report.new_findings:
            self._kick("deliver")

    def job_scan_roster(self) -> None:
        from monitor.jobs.roster import scan_roster

        if self.stop.is_set():
            return
        report = scan_roster(self.rt)
        self.metrics.new_findings(report.new_findings)
        log_findings(report.new_findings, "scan_roster")
        if report.new_findings:
            self._kick("deliver")

    def job_deliver(self) -> None:
        from monitor.alerts.delivery import deliver

        report = deliver(self.rt.store, self.rt.sinks, now=self.rt.clock, stop=self.stop,
                         min_interval=self.rt.settings.alerts.min_interval)
        self.metrics.delivery(report)
        log_delivery(report)

    def job_prune(self) -> None:
        """Sent outbox rows older than [state] keep go; findings stay (they are the dedup memory)."""
        rt = self.rt
        n = rt.store.prune_sent(rt.clock() - timedelta(seconds=rt.settings.state_keep))
        if n:
            log.info("pruned %d delivered outbox row(s) older than [state] keep", n, extra={"job": "prune"})

    def job_digest(self) -> None:
        from monitor.jobs.digest import queue_digest

        if self.stop.is_set():
            return
        report = queue_digest(self.rt)
        log.info("daily digest queued: %d pins, %d changes, %d open findings", report.payload["pins"],
                 report.payload["changes"], report.payload["open_findings"], extra={"job": "digest"})
        self._kick("deliver")

    def job_event_check(self, key: str) -> None:
        """The check Hub events asked for (at most one per repo per [hub_webhook] min_interval): the
        steady-cycle check of that repo, then the claimed tag moves that hold. Its Hub calls are the
        budget's lowest row: when that share is spent, the repo goes first in the next scan."""
        from monitor.hub.client import EventShareSpent
        from monitor.jobs.pins import scan_pins

        claims, events = self.events.start(key)
        if self.stop.is_set() or not any(p.key == key for p in self.rt.settings.pin):
            return  # shutting down (the next start checks it), or no longer pinned after a reload
        try:
            report = scan_pins(self.rt, only={key}, client=self.rt.client.for_events())
        except EventShareSpent:
            self.events.defer(key, claims)
            self.metrics.hub_events.labels("deferred").inc(max(1, events))
            log.warning("Hub event check of %s deferred to the next scan: the request budget's event share "
                        "is spent", key, extra={"job": "event"})
            return
        self.metrics.scan(report)
        new = list(report.new_findings)
        if claims:
            new += self._verify_claims(key, claims)
        if new:
            self._kick("deliver")

    def _verify_claims(self, key: str, claims: list) -> list:
        """Record the claimed tag moves of `key` that hold; the rest wait for its next check."""
        from monitor.jobs.events import record_claims

        new, left = record_claims(self.rt, key, claims)
        if left:
            self.events.defer(key, left)
        self.metrics.new_findings(new)
        return new

    def schedule_event_check(self, key: str, delay: float) -> None:
        self._once(f"event:{key}", lambda: self.job_event_check(key), delay)

    def _once(self, job_id: str, fn: Callable[[], None], delay: float = 0.0) -> None:
        """Run `fn` once, `delay` seconds from now, on the scheduler."""
        if self.stop.is_set() or self.scheduler is None:
            return
        self.scheduler.add_job(self._guard(job_id, fn), id=job_id, name=job_id, replace_existing=True,
                               next_run_time=datetime.now(timezone.utc) + timedelta(seconds=delay),
                               misfire_grace_time=300, coalesce=True, max_instances=1)

    def job_heartbeat(self) -> None:
        self.heartbeat = time.monotonic()
        # This job running proves the scheduler and its executor are alive, so only it tells
        # systemd READY=1 and pets the watchdog (WatchdogSec=): a wedged scheduler gets restarted.
        if not self.stop.is_set():
            if not self._sd_ready:
                self._sd_ready = True
                sd_notify.ready(f"running: {len(self.rt.settings.pin)} pin(s)")
            sd_notify.watchdog()
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()

    def jobs(self) -> dict[str, tuple[Callable[[], None], float, float]]:
        """name -> (function, interval seconds, jitter seconds)."""
        s = self.rt.settings
        out = {
            "scan_pins": (self.job_scan_pins, s.pins.every, s.pins.jitter),
            "deliver": (self.job_deliver, s.alerts.every, 0.0),
            "prune": (self.job_prune, PRUNE_EVERY, 0.0),
            # At least twice per systemd watchdog interval ($WATCHDOG_USEC), when that is under 10 s.
            "heartbeat": (self.job_heartbeat, min(5.0, (sd_notify.watchdog_interval() or 10.0) / 2), 0.0),
        }
        if s.lookalike.protected:
            out["scan_lookalikes"] = (self.job_scan_lookalikes, s.lookalike.every, s.pins.jitter)
        if s.roster.orgs or s.roster.users:
            out["scan_roster"] = (self.job_scan_roster, s.roster.every, s.pins.jitter)
        return out

    # --- scheduling -------------------------------------------------------------------------------
    def _schedule(self) -> None:
        now = datetime.now(timezone.utc)
        for name, (fn, every, jitter) in self.jobs().items():
            self.scheduler.add_job(
                self._guard(name, fn), "interval", seconds=every, jitter=jitter or None, id=name,
                name=name, replace_existing=True, coalesce=True, max_instances=1,
                misfire_grace_time=max(30, int(every)), next_run_time=now + timedelta(seconds=1))
        self._schedule_digest()

    def _schedule_digest(self) -> None:
        """The daily digest at `[alerts] digest` local time (cron); dropped when a reload removes it.
        A daemon down at that time sends it when it comes back within the hour (`digest.missed`: a
        new cron job would first fire tomorrow), unless a digest was queued since."""
        from monitor.jobs.digest import missed, trigger

        at = self.rt.settings.alerts.digest
        if at is not None:
            now = self.rt.clock()
            catch_up = {"next_run_time": now} if missed(at, now, self.rt.store.last_report_at("digest")) else {}
            self.scheduler.add_job(self._guard("digest", self.job_digest), trigger(at), id="digest", name="digest",
                                   replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600,
                                   **catch_up)
        elif self.scheduler.get_job("digest") is not None:
            self.scheduler.remove_job("digest")

    def _guard(self, name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            started = time.monotonic()
            with self._idle:
                self._running += 1
            try:
                fn()
            except Exception as e:
                if isinstance(e, sqlite3.Error):
                    self.db_problem = f"not writable: {type(e).__name__}"
                self.metrics.job(name.split(":", 1)[0], False)
                log.exception("job %s failed; it runs again at its next time", name, extra={"job": name})
            else:
                if name != "heartbeat":  # a job that wrote the database
                    self.db_problem = None
                self.metrics.job(name.split(":", 1)[0], True)
                # The heartbeat runs every few seconds: at INFO it would drown every other line.
                log.log(logging.DEBUG if name == "heartbeat" else logging.INFO, "job %s done", name,
                        extra={"job": name, "duration": round(time.monotonic() - started, 3)})
            finally:
                with self._idle:
                    self._running -= 1
                    # A job reads self.rt after it is counted, so at 0 no job holds a retired runtime.
                    retired, self._retired = (self._retired, []) if self._running == 0 else ([], self._retired)
                    self._idle.notify_all()
                for old in retired:
                    old.close()
        return run

    def _kick(self, name: str) -> None:
        if self.stop.is_set():
            return
        job = self.scheduler.get_job(name) if self.scheduler else None
        if job is not None:
            job.modify(next_run_time=datetime.now(timezone.utc))

    def reload(self) -> bool:
        """Re-read the config; keep the old one when the new one is invalid."""
        from monitor import logs
        from monitor.runtime import Runtime

        try:
            settings = config_mod.load(self.config_path)
        except ConfigError as e:
            log.error("config reload failed, keeping the running config: %s", e)
            return False
        old = self.rt
        self.rt = Runtime.build(settings)
        self.rt.stop = self.stop
        logs.configure(getattr(self.args, "verbose", 0), getattr(self.args, "log_format", "text"),
                       settings.secrets(), quiet=getattr(self.args, "quiet", False))
        self._schedule()
        # Not old.close() here: a scan or delivery that started before the reload still uses the
        # old store (closing it would fail that scan, or lose a mark_sent and re-send an alert).
        with self._idle:
            self._retired.append(old)
        life.info("config reloaded from %s: %d pin(s)", self.config_path, len(settings.pin))
        return True

    def run(self) -> int:
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.scheduler = BlockingScheduler(timezone=timezone.utc)
        self._schedule()

        def on_term(signum: int, frame: Any) -> None:
            if self.stop.is_set():  # a second SIGTERM/Ctrl-C: the scheduler is already shut down
                life.info("signal %d: already finishing running jobs, then exiting", signum)
                return
            life.info("signal %d: finishing running jobs, then exiting", signum)
            sd_notify.stopping("stopping: finishing running jobs")  # systemd stops the watchdog
            self.stop.set()
            # Not shutdown(wait=True): it holds the scheduler's job-store lock while it waits, and a
            # running job that touches the scheduler (_kick) then deadlocks the daemon. Stop
            # scheduling (off the signal handler, which may interrupt a lock holder) and let run()
            # wait for the running jobs before it closes the store.
            threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": False}, daemon=True).start()

        def on_hup(signum: int, frame: Any) -> None:
            # Reload on a scheduler thread, not inside the signal handler.
            self._reload_requested.set()
            self._kick("heartbeat")

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)
        from monitor.http.server import HttpServer

        try:
            self.http = HttpServer(self.rt.settings.http, self.api).start()
        except OSError as e:
            log.error("cannot listen on %s:%d: %s", self.rt.settings.http.host, self.rt.settings.http.port, e)
            self.rt.close()
            return EXIT_TEMPFAIL
        life.info("hubwatch started: %d pin(s), state %s, http %s", len(self.rt.settings.pin),
                  self.rt.settings.state_path, self.http.url)
        try:
            self.scheduler.start()
            with self._idle:
                self._idle.wait_for(lambda: self._running == 0)
        finally:
            self.http.stop()
            for rt in [*self._retired, self.rt]:
                rt.close()
        life.info("hubwatch stopped")
        return EXIT_OK

