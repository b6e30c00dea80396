"""``dispatcher limits pause|resume|drain --class X``: hold one size class live, or let it go.

Each is an edit of the live field ``classes[X].state`` in the dispatcher's ConfigMap, through
the same path as ``limits set`` (comments kept, validated as the service validates a reload,
diff printed, ``--dry-run``). The running dispatcher applies it on its next reload and logs
``limits_reloaded`` with the change. Holding a class needs ``pubsub.routing: class_topics``:
in ``direct`` routing the edit is refused (see docs/operations.md).
"""

from __future__ import annotations

from typing import Any

import click

from dispatcher.commands.limit_patch import apply_changes, patch_options
from dispatcher.operator.limit_edits import LimitChange

STATES = {"pause": "paused", "resume": "active", "drain": "draining"}


def _state_command(verb: str, help_text: str) -> click.Command:
    @click.command(verb, help=help_text)
    @click.option(
        "--class", "classes", multiple=True, required=True, help="Size class (repeatable)."
    )
    @patch_options
    def command(classes: tuple[str, ...], **target: Any) -> None:
        state = STATES[verb]
        apply_changes(
            [LimitChange(field="state", value=state, size_class=c) for c in classes], **target
        )

    return command


pause_command = _state_command(
    "pause",
    """Pause a size class: it takes no new orders and creates no Workflows.

    Its subscription stops pulling, so its backlog waits in Pub/Sub; orders the replicas
    already hold are re-parked there (published again, then acked: no delivery attempt
    spent). Other classes go on. Needs pubsub.routing: class_topics.

    Example: dispatcher limits pause --class large
    """,
)
resume_command = _state_command(
    "resume",
    """Resume a paused or draining size class: its subscription pulls again.

    Example: dispatcher limits resume --class large
    """,
)
drain_command = _state_command(
    "drain",
    """Drain a size class: it takes no new orders; what it holds is created.

    Its subscription stops pulling; the orders the replicas hold are batched at once and
    created as the limits allow at that moment, the rest re-parked to Pub/Sub (no delivery
    attempt spent). Live Workflows run to their end. Needs pubsub.routing: class_topics.

    Example: dispatcher limits drain --class large
    """,
)
