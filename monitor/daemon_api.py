"""What the running daemon offers its HTTP server: lookups, Hub events, readiness, metrics.

Hub events only queue work on the scheduler (the Hub waits for our answer); the work itself runs
as a one-off job with the same guards as the periodic ones.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from monitor.config import Secret, SlackAcks
from monitor.http.hub_events import HubEvent
from monitor.jobs.lookup import LookupResult

if TYPE_CHECKING:
    from monitor.daemon import Daemon
    from monitor.http.slack_command import SlashCommand

log = logging.getLogger("hubwatch.api")
OUTBOX_STUCK_AFTER = 3600.0
REPO_SCOPES = ("repo", "repo.content", "repo.config")


class DaemonApi:
    def __init__(self, daemon: "Daemon"):
        self.daemon = daemon

    @property
    def hub_webhook_secret(self) -> Secret | None:
        return self.daemon.rt.settings.hub_webhook_secret

    @property
    def slack_signing_secret(self) -> Secret | None:
        return self.daemon.rt.settings.slack_signing_secret

    @property
    def http_token(self) -> Secret | None:
        return self.daemon.rt.settings.http.token

    def first_slack_request(self, signature: str, forget_at: float, now: float) -> bool:
        """Slack's replay check, kept in the database so a restart does not forget it."""
        return self.daemon.rt.store.first_slack_request(signature, forget_at, now)

    def lookup(self, name: str) -> LookupResult:
        """A lookup someone asked for over HTTP or Slack: its Hub calls spend the on-demand share."""
        from monitor.jobs.lookup import lookup_now

        rt = self.daemon.rt
        return lookup_now(rt.client.for_on_demand(), rt.settings.lookalike, name, rt.clock())

    def ack(self, fingerprint: str, cmd: "SlashCommand") -> str:
        """`/hubwatch ack FINGERPRINT` from Slack: acknowledge when [slack] ack_users (and
        ack_channels, team_id) allow this user, noting who did it; else say why not."""
        from monitor.errors import UsageError
        from monitor.triage import acknowledge

        rt = self.daemon.rt
        who = "".join(c for c in cmd.user_id if c.isalnum())[:32] or "unknown user"
        refusal = ack_refusal(rt.settings.slack_acks, cmd, who)
        if refusal:
            log.warning("Slack ack of %s by %s refused: %s", fingerprint, who, refusal)
            e = UsageError(refusal)
            e.slack_safe = True
            raise e
        try:
            (line,) = acknowledge(rt.store, [fingerprint], f"via Slack by {who}", rt.clock(), actor=who,
                                  via="Slack", sinks=list(rt.sinks))
        except UsageError as e:
            e.slack_safe = True  # our own text about a 32-hex fingerprint: safe to show in Slack
            raise
        log.warning("finding %s acknowledged via Slack by %s", fingerprint, who)
        kick = getattr(self.daemon, "_kick", None)  # the notice (and a marked alert) go out now
        if kick is not None:
            kick("deliver")
        return line

    def hub_event(self, event: HubEvent) -> str:
        """A verified Hub event: a hint. It schedules a check of the pinned repo it names (at most
        one per repo per [hub_webhook] min_interval); any other name costs nothing."""
        outcome, answer = self._hub_event(event)
        self.daemon.metrics.hub_events.labels(outcome).inc()
        return answer

    def _hub_event(self, event: HubEvent) -> tuple[str, str]:
        from monitor.detect.state import RepoState
        from monitor.jobs.events import tag_claims

        if event.scope not in REPO_SCOPES and not event.scope.startswith("repo."):
            return "ignored", f"ignored: scope {event.scope}"
        settings = self.daemon.rt.settings
        if not any(p.key == event.key for p in settings.pin):
            # `webhooks install` registers the pinned repos and the protected orgs; an event naming
            # anything else is not from our webhook, and a protected org's news is the scans' job.
            return "ignored", "ignored: not watched"
        state = RepoState.from_json(self.daemon.rt.store.load_state(event.key))
        claims = tag_claims(event, state.tags if state.baseline else {})
        outcome, delay = self.daemon.events.offer(event.key, claims, settings.event_min_interval)
        if outcome == "checked" or delay > 0:
            self.daemon.schedule_event_check(event.key, delay)
        if outcome == "checked":
            return outcome, "checking pinned repo"
        return outcome, "merged into the pinned repo's next check"

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Answered from memory and one outbox read; no database write."""
        checks: dict[str, str] = {}
        rt = self.daemon.rt
        # From memory: the outcome of the daemon's own last database writes (its jobs), never a
        # write per request (anyone who reaches the port may ask, as often as they like).
        checks["database"] = self.daemon.db_problem or "ok"
        age = time.monotonic() - self.daemon.heartbeat
        checks["scheduler"] = "ok" if age < 60 else f"no heartbeat for {age:.0f}s"
        try:
            stats = rt.store.outbox_stats(rt.clock())
            oldest = stats.oldest_pending_age_seconds or 0.0
            checks["outbox"] = "ok" if oldest < OUTBOX_STUCK_AFTER else f"oldest alert waiting {oldest:.0f}s"
        except Exception as e:
            checks["outbox"] = f"unreadable: {type(e).__name__}"
        return all(v == "ok" for v in checks.values()), checks

    def metrics(self) -> tuple[bytes, str]:
        return self.daemon.metrics.render()


def ack_refusal(acks: SlackAcks, cmd: "SlashCommand", who: str) -> str | None:
    """None when this Slack user may acknowledge from this channel and workspace, else the reply.
    Acks come from anyone in the workspace who can type the command: only the listed users may."""
    if not acks.users:
        return (f"Acknowledging from Slack is off on this hubwatch. To allow it, an operator adds Slack "
                f"user ids to [slack] ack_users in the hubwatch config (yours is {who}) and reloads it.")
    if acks.team_id is not None and acks.team_id not in (cmd.team_id, cmd.enterprise_id):
        return "Acknowledging is not allowed from this Slack workspace."
    if cmd.user_id not in acks.users:
        return (f"You ({who}) may not acknowledge findings: ask an operator to add you to "
                "[slack] ack_users in the hubwatch config.")
    if acks.channels and cmd.channel_id not in acks.channels:
        return "Acknowledging is not allowed from this channel: use one listed in [slack] ack_channels."
    return None
