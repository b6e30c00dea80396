"""(c) Publish -> Workflow latency: orders published at a steady rate while the service runs.

Per order: the time its ack is sent after its Workflow exists (``Metrics.order_settled``,
called by the executor) minus the message's Pub/Sub ``publish_time``. The emulator's clock is
this host's, so there is no clock skew.
"""

from __future__ import annotations

import time

from bench.harness import Bench
from bench.measure import CpuMeter, percentile, wait_for
from bench.results import LatencyResult
from bench.workload import order_payload


def phase_latency(bench: Bench, orders: int, rate: float) -> LatencyResult:
    """(c) publish -> Workflow created (and the order acked), publishing at a steady ``rate``."""
    topic, subscription = bench.subscription("latency")
    linger = max(c.max_linger_seconds for c in bench.base.classes if c.name == "small")
    with bench.service(subscription) as (service, _sink, metrics):
        service.start()
        time.sleep(0.5)  # the stream is open before the first publish
        meter = CpuMeter(bench.emulator.pid)
        start = time.perf_counter()
        futures = []
        for i in range(orders):
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            futures.append(bench.publisher.publish(topic, order_payload(bench.run, "lat", i)))
        published_in = time.perf_counter() - start
        for future in futures:
            future.result(timeout=60)
        wait_for(lambda: metrics.settled >= orders, timeout_s=linger + 60, what="latency run")
        cpu = meter.read()
        ages = sorted(metrics.ages)
    bench.drop(subscription)
    return LatencyResult(
        orders=orders,
        publish_rate=rate,
        achieved_publish_rate=round(orders / published_in, 1),
        p50_s=round(percentile(ages, 50), 4),
        p90_s=round(percentile(ages, 90), 4),
        p99_s=round(percentile(ages, 99), 4),
        max_s=round(ages[-1], 4),
        mean_s=round(sum(ages) / len(ages), 4),
        workflows=metrics.workflows,
        linger_s=linger,
        cpu=cpu,
    )
