"""What every subcommand shares: loading the configuration and failing with a clear message."""

from __future__ import annotations

from pathlib import Path

import click

from dispatcher.config import ConfigError, Settings, load_settings

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="DISPATCHER_CONFIG",
    help="Configuration YAML (default: $DISPATCHER_CONFIG, else the built-in default).",
)


def settings_or_exit(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
