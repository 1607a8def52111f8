"""What every command shares: exit codes, reading the config, setting up logging."""

from __future__ import annotations

import argparse
import os

from monitor import config as config_mod

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_CONFIG = 0, 1, 2, 75, 78


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
