"""Small formatting helpers the operator commands share, so their tables read alike."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
import yaml
from rich.console import Console

# Width of a table written to a pipe or file: wide enough that no real row is cut or wrapped.
PIPE_WIDTH = 1000


def console(*, stderr: bool = False) -> Console:
    """A console that prints data as it is: order ids and details may contain "[...]",
    which Rich would otherwise take for markup and drop.

    Piped (`| grep`, `> file`) Rich would assume 80 columns and cut or wrap the tables, so a
    stream that is not a terminal gets PIPE_WIDTH; an explicit COLUMNS still wins."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not stream.isatty():
        width = PIPE_WIDTH
    return Console(markup=False, stderr=stderr, width=width)


def print_json(document: Any) -> None:
    """One JSON document on stdout (logs and progress go to stderr)."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2, default=str))


def clip(text: str, width: int) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def ago(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``: ages as an operator reads them."""
    if seconds is None:
        return "?"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, _ = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


#: Formats of ``-o``: a table for people; JSON or YAML, one document on stdout, for scripts.
OUTPUT_FORMATS = ("table", "json", "yaml")

output_option = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="table for people (full width when piped); json or yaml: one document for scripts.",
)


def print_document(document: Any, output: str) -> None:
    """One JSON or YAML document on stdout (logs and progress go to stderr)."""
    if output == "json":
        print_json(document)
    elif output == "yaml":
        plain = json.loads(json.dumps(document, default=str))
        click.echo(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), nl=False)
    else:
        raise ValueError(f"not a document format: {output}")
