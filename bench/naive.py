"""(b) The naive consumer: one Workflow per message, created in the callback, then the ack.

The same intake (validate and classify) and the same renderer as the dispatcher, so the
difference to (c) is batching and admission, not parsing.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench.harness import Bench, timed_subscription
from bench.results import PhaseResult, cpu_per_order
from dispatcher.core.batching import Batch
from dispatcher.core.intake import Intake, Refused
from dispatcher.core.render import render_workflow


def phase_naive(bench: Bench, orders: int) -> PhaseResult:
    """(b) one Workflow per message, created in the callback before the ack."""
    subscription = bench.backlog("naive", orders)
    settings = bench.settings(subscription)
    intake = Intake(settings)
    sink = bench.sink()
    counter = itertools.count(1)
    failures = itertools.count(1)
    acked = [0]
    failed = [0]

    def callback(message: Any) -> None:
        now = time.monotonic()
        ticket = intake(message.data, message.attributes, receipt=message, now=now)
        if isinstance(ticket, Refused):
            failed[0] = next(failures)
            message.nack()
            return
        body = render_workflow(
            Batch(ticket.size_class, (ticket,), now),
            settings=settings,
            message_ids=[str(message.message_id)],
        )
        try:
            sink.create(body)
        except Exception:  # noqa: BLE001 - counted; Pub/Sub redelivers
            failed[0] = next(failures)
            message.nack()
            return
        message.ack()
        acked[0] = next(counter)

    seconds, cpu, threads = timed_subscription(
        bench, subscription, callback, done=lambda: acked[0] >= orders, orders=orders, what="naive"
    )
    writes = sink.api_writes()
    return PhaseResult(
        "naive",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
        create_calls=sink.calls,
        api_writes=writes,
        writes_per_order=writes / orders,
        extra={"failed_callbacks": failed[0]},
    )
