"""Options and environment variables shared by ``dead-letter inspect`` and ``replay``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dispatcher.commands.pubsub_access import INSPECT_SUFFIX
from dispatcher.core.replay import REASON_CODES, parse_since

SUBSCRIPTION_ENV = "DISPATCHER_DEAD_LETTER_SUBSCRIPTION"
ORDERS_TOPIC_ENV = "DISPATCHER_ORDERS_TOPIC"
PUBLISH_TIMEOUT_SECONDS = 60.0

subscription_option = click.option(
    "--subscription",
    default=None,
    envvar=SUBSCRIPTION_ENV,
    help=(
        f"Subscription on the dead-letter topic (name or full path; ${SUBSCRIPTION_ENV}; "
        f"default: <pubsub.dead_letter_topic>{INSPECT_SUFFIX}, as deployed)."
    ),
)
project_option = click.option(
    "--project",
    default=None,
    help="Google Cloud project for short names (default: pubsub.project of the configuration).",
)
reason_option = click.option(
    "--reason",
    "reasons",
    multiple=True,
    type=click.Choice(REASON_CODES),
    metavar="CODE",
    help="Only dead letters with this dlq_reason, e.g. template_missing (repeatable).",
)
stage_option = click.option(
    "--stage",
    "stages",
    multiple=True,
    type=click.Choice(("validate", "classify", "create", "pubsub")),
    help="Only dead letters given up at this stage (repeatable).",
)
since_option = click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only dead letters dead-lettered at or after WHEN: 90m, 2h, 1d ago, or an ISO 8601 "
    "time (UTC unless it names a zone).",
)


def since_time(text: str | None) -> datetime | None:
    """``--since`` as a time, or a usage error (exit 2) naming the option."""
    if text is None:
        return None
    try:
        return parse_since(text, now=datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r}: expected 90m, 2h, 1d or an ISO 8601 time", param_hint="--since"
        ) from exc


max_scan_option = click.option(
    "--max-scan",
    type=click.IntRange(min=1),
    default=None,
    help="Look at no more than this many dead letters (default: no cap).",
)
idle_timeout_option = click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="Stop once no new dead letter arrived for this many seconds (the subscription is empty).",
)

#: Exit codes of the dead-letter commands, shown at the end of their --help.
INSPECT_EXIT_CODES = (
    "\b\nExit codes:\n"
    "  0    done (also when nothing matched)\n"
    "  1    Pub/Sub, credentials or the configuration refused, or interrupted (Ctrl-C)\n"
    "  2    wrong usage (unknown option, bad value)"
)
EXIT_CODES = (
    "\b\nExit codes:\n"
    "  0    done (also when nothing matched)\n"
    "  1    a publish failed, or Pub/Sub, credentials or the configuration refused\n"
    "  2    wrong usage (unknown option, bad value)\n"
    "  130  interrupted (Ctrl-C): what was republished is acked, the rest given back"
)
