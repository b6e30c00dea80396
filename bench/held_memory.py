"""Memory while orders are held back: a fresh dispatcher process with every class cap at 0.

The child runs in its own process (``python -m bench.dispatch_bench --hold-child``), so the
RSS read is the dispatcher's and nothing else's; it prints one JSON line the parent reads.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

from bench.harness import PROJECT, Bench
from bench.measure import rss_bytes, wait_for
from bench.results import HoldResult
from bench.workload import BenchMetrics
from dispatcher.adapters.cluster_memory import LocalClusterState
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.adapters.sinks import MemorySink
from dispatcher.config import load_settings
from dispatcher.service.assembly import Service, settle_heap

REPO = Path(__file__).resolve().parents[1]


def phase_hold(bench: Bench, orders: int) -> HoldResult:
    """RSS of a fresh dispatcher process while ``orders`` are held back (class caps 0)."""
    subscription = bench.backlog("hold", orders)
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=bench.emulator.host)
    command = [
        sys.executable,
        "-m",
        "bench.dispatch_bench",
        "--hold-child",
        "--hold",
        str(orders),
        "--subscription",
        subscription,
        "--dead-letter-topic",
        bench.dead_letter_topic,
    ]
    done = subprocess.run(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, timeout=300, check=False
    )
    bench.drop(subscription)
    if done.returncode != 0:
        raise RuntimeError(f"hold child failed with code {done.returncode}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return HoldResult(**found)


def hold_child(orders: int, subscription: str, dead_letter_topic: str) -> NoReturn:
    """Runs in its own process, so the RSS read is the dispatcher's and nothing else's."""
    import dispatcher.service.wiring  # noqa: F401 - a replica has the Kubernetes client loaded

    base = load_settings(environ={})
    settings = base.model_copy(
        update={
            "pubsub": base.pubsub.model_copy(
                update={
                    "project": PROJECT,
                    "subscription": subscription,
                    "dead_letter_topic": dead_letter_topic,
                    "max_messages": min(100_000, orders + orders // 10),
                }
            ),
            "classes": [c.model_copy(update={"max_live_workflows": 0}) for c in base.classes],
        }
    )
    publisher = publisher_client()
    subscriber = subscriber_client()
    metrics = BenchMetrics()
    service = Service(
        settings,
        subscriber=subscriber,
        publisher=publisher,
        sink=MemorySink(),
        cluster=LocalClusterState(),
        metrics=metrics,
    )
    gc.collect()
    settle_heap()  # as ``dispatcher run`` does before its service starts
    baseline, _ = rss_bytes()
    start = time.perf_counter()
    service.start()
    # The held-orders gauge is set on the loop's gauge timer (every 0.5 s).
    wait_for(lambda: metrics.held() >= orders, timeout_s=120, what="held orders")
    seconds = time.perf_counter() - start
    time.sleep(1.0)  # let the client's lease bookkeeping settle
    held = metrics.held()
    rss, hwm = rss_bytes()
    result = HoldResult(
        held_orders=held,
        seconds_to_hold=round(seconds, 2),
        rss_bytes=rss,
        hwm_bytes=hwm,
        baseline_rss_bytes=baseline,
        bytes_per_held_order=round((rss - baseline) / max(1, held), 1),
    )
    print(json.dumps(asdict(result)), flush=True)
    # No drain: it would re-park every held order (one publish each, onto the topic this
    # stream still reads) and that is not what this phase measures. The parent deletes the
    # subscription; the process ends here, its clients with it.
    os._exit(0)
