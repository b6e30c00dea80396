"""Many dead letters, a real ``dispatcher dead-letter replay`` process, and a count of what
reached the orders topic: shared by the kill test and ``bench.replay_bench``.

Dead letters carry the attributes the dispatcher's own dead-letter publisher writes, so the
replay strips and keeps exactly what it would in production. What arrives is counted per order
id and per message id, so a test can tell "lost" (an order never arrived) from "duplicated"
(an order arrived in two messages) from "redelivered" (the same message twice).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dispatcher.adapters.pubsub import dead_letter_attributes
from dispatcher.core.decisions import DeadLetter
from dispatcher.core.order import Reason

ORDER = '{{"order_id":"{}","input":{{"uri":"gs://in/{}","size_bytes":1000}}}}'


def publish_dead_letters(publisher: Any, topic: str, *, count: int, prefix: str) -> list[str]:
    """Publish ``count`` template_missing dead letters; their order ids."""
    order_ids = [f"{prefix}-{n}" for n in range(count)]
    futures = []
    for n, order_id in enumerate(order_ids):
        delivery = SimpleNamespace(
            attributes={"order_id": order_id},
            message_id=f"orig-{n}",
            publish_time=datetime.now(UTC),
        )
        decision = DeadLetter(
            receipts=(None,),
            reason=Reason.TEMPLATE_MISSING,
            detail="WorkflowTemplate order-small not found",
            stage="create",
            order_id=order_id,
        )
        attributes = dead_letter_attributes(delivery, decision)
        futures.append(publisher.publish(topic, ORDER.format(order_id, n).encode(), **attributes))
    for future in futures:
        future.result(timeout=60)
    return order_ids


class Arrivals:
    """Messages pulled (and acked) from a subscription: message ids per order id."""

    def __init__(self, subscriber: Any, subscription: str) -> None:
        self._subscriber = subscriber
        self._subscription = subscription
        self.by_order: dict[str, set[str]] = defaultdict(set)

    @property
    def messages(self) -> int:
        return sum(len(ids) for ids in self.by_order.values())

    def pull_until(self, done: Callable[[], bool], *, timeout: float) -> bool:
        """Pull and ack until ``done()`` holds; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            response = self._subscriber.pull(
                subscription=self._subscription, max_messages=1000, timeout=2
            )
            received = response.received_messages
            if received:
                self._subscriber.acknowledge(
                    subscription=self._subscription, ack_ids=[m.ack_id for m in received]
                )
            for message in received:
                order_id = dict(message.message.attributes)["order_id"]
                self.by_order[order_id].add(message.message.message_id)
        return True


def replay_args(*, dead_letters: str, topic: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dispatcher",
        "--log-format",
        "json",
        "dead-letter",
        "replay",
        "--subscription",
        dead_letters,
        "--to-topic",
        topic,
        *extra,
    ]


def start_replay(
    args: list[str], *, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``dispatcher dead-letter replay`` as a child process (stderr to ``log``)."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )


# A CI job started in the background inherits SIGINT ignored (POSIX, no job control), and Python
# then never raises KeyboardInterrupt: a small launcher restores the default, as a terminal's
# Ctrl-C would find it, and execs the command (a default disposition survives exec). Not
# `preexec_fn`: Python code between fork and exec in a process running gRPC threads can hang
# the child (seen once in CI: an epoll error, then a replay that never started).
_DEFAULT_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
