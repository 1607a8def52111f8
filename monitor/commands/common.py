"""What every command shares: exit codes, reading the config, setting up logging."""

from __future__ import annotations

import argparse
import os

from monitor import config as config_mod

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_CONFIG = 0, 1, 2, 75, 78
# A sink's name in the outbox -> the config key that sets its receiver (messages name the key).
SINK_KEYS = {"slack": "slack.webhook_url", "webhook": "webhook.url", "stdout": "stdout"}


def settings_of(args: argparse.Namespace):
    return config_mod.load(config_mod.config_path(args.config))


def setup_logging(args: argparse.Namespace, settings=None) -> None:
    from monitor import logs

    logs.configure(args.verbose, args.log_format, settings.secrets() if settings else (),
                   quiet=getattr(args, "quiet", False))


def lookalike_settings(args: argparse.Namespace):
    """lookup/screen work without a config file too (no protected names then) unless -c was given."""
    path = config_mod.config_path(args.config)
    if args.config is None and not path.exists():
        return None
    return config_mod.load(path)


def hub_and_lookalike(settings) -> tuple[config_mod.HubSettings, config_mod.LookalikeSettings]:
    """[hub] and [lookalike] of `settings`, or (lookup, screen and refs scan without a config)
    the defaults, with the endpoint from $HF_ENDPOINT as the Hub libraries use it."""
    if settings is not None:
        return settings.hub, settings.lookalike
    return (config_mod.HubSettings(endpoint=os.environ.get("HF_ENDPOINT", config_mod.DEFAULT_ENDPOINT)),
            config_mod.LookalikeSettings())


def token_rejected_line(settings, consequence: str = "pins cannot be checked until it is replaced") -> str:
    from monitor.detect.token import rejected_sentence  # loads the findings model: only when needed

    return rejected_sentence(settings.hub.token_source, consequence)


def check_state(args: argparse.Namespace, settings, *, write: bool = True, say=None,
                lock_probe: bool = False):
    """The state database preflight (monitor/store/preflight.py) every command runs before it
    opens the database; a writer that is about to create it says so once (`say`, else stderr)."""
    import sys

    from monitor.store import migrations
    from monitor.store.preflight import check

    checked = check(settings.state_path, settings.path, write=write,
                    new_state=bool(getattr(args, "new_state", False)), known_migrations=migrations.known_names(),
                    lock_probe=lock_probe)
    if write and not checked.exists:
        line = f"creating a new state database at {checked.path} (state.path in {settings.path})"
        if say is not None:
            say(line)
        else:
            print(f"hubwatch: {line}", file=sys.stderr, flush=True)
    return checked
