"""What the running daemon offers its HTTP server: lookups, Hub events, readiness, metrics.

Hub events only queue work on the scheduler (the Hub waits for our answer); the work itself runs
as a one-off job with the same guards as the periodic ones.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from monitor.config import Secret, SlackAcks
from monitor.detect import revisions as rv
from monitor.detect.findings import Finding
from monitor.http.hub_events import HubEvent
from monitor.hub.models import RepoId
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

    def judge(self, name: str) -> LookupResult:
        """Our own re-judging of a namespace (after a Hub event): the normal budget."""
        from monitor.jobs.lookup import lookup_now

        rt = self.daemon.rt
        return lookup_now(rt.client, rt.settings.lookalike, name, rt.clock())

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
        if event.scope not in REPO_SCOPES and not event.scope.startswith("repo."):
            return f"ignored: scope {event.scope}"
        settings = self.daemon.rt.settings
        if any(p.key == event.key for p in settings.pin):
            self.daemon.trigger_pin_check(event.key, event)
            return "checking pinned repo"
        namespace = event.repo_name.split("/", 1)[0]
        from monitor.jobs.lookup import screener_for

        la = settings.lookalike
        if la.protected and (namespace.lower() in {p.lower() for p in la.protected}
                             or screener_for(la.protected, la.allow).screen(namespace)):
            self.daemon.trigger_namespace_check(namespace)
            return "checking namespace"
        return "ignored: not watched"

    def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        rt = self.daemon.rt
        try:
            rt.store.set_meta("readyz", str(time.time()))
            checks["database"] = "ok"
        except Exception as e:  # any failure to write is "not ready", whatever its type
            checks["database"] = f"not writable: {type(e).__name__}"
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


def event_tag_findings(event: HubEvent, base: str, repo: RepoId) -> list[Finding]:
    """Tag re-points reported by the Hub. Recorded after the triggered check, with the same
    fingerprint as a polled tag move: when the check saw the move this is a no-op; when the tag
    moved and moved back between our reads, this is the only trace of it."""
    out = []
    for u in event.updated_refs:
        if not u.ref.startswith("refs/tags/") or u.old_sha is None or u.old_sha == u.new_sha:
            continue
        move = rv.Move(u.ref[len("refs/tags/"):], "tag", u.old_sha, u.new_sha, False)
        f = rv.describe_move(repo, base, move, (), None, None, (), ())
        evidence = {**f.evidence, "source": "Hub webhook event"}
        out.append(Finding(f.kind, f.severity, f.subject, f.summary, evidence, f.links, f.fingerprint))
    return out
