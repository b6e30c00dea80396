"""(a) The ceiling: a google-cloud-pubsub streaming-pull subscriber whose callback only acks.

What the client and the server can do on this machine; (c) is read against it.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.harness import Bench, timed_subscription
from bench.results import PhaseResult, cpu_per_order


def phase_ceiling(bench: Bench, orders: int) -> PhaseResult:
    """(a) pull + ack only, from a backlog of ``orders``."""
    subscription = bench.backlog("ceiling", orders)
    counter = itertools.count(1)
    acked = [0]

    def callback(message: Any) -> None:
        message.ack()
        acked[0] = next(counter)

    seconds, cpu, threads = timed_subscription(
        bench,
        subscription,
        callback,
        done=lambda: acked[0] >= orders,
        orders=orders,
        what="ceiling",
    )
    return PhaseResult(
        "ceiling",
        orders,
        seconds,
        orders / seconds,
        cpu,
        cpu_per_order(cpu, seconds, orders),
        threads,
    )
