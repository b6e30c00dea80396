"""Replay benchmark: how long ``dispatcher dead-letter replay`` takes for an outage's dead letters.

Why: the promise to an operator is "one command replays them all", so the figure that matters is
the wall time of one real ``dispatcher dead-letter replay`` process for N dead letters on the
load-grade emulator (``fast``, started here), and that every order then arrives and nothing is
left on the dead-letter subscription. The time counts from process start to its exit, so it
includes the idle timeout that ends the run (reported separately).

Usage:
    .venv/bin/python -m bench.replay_bench --dead-letters 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import fast_emulator
from tests.integration.replay_kit import Arrivals, publish_dead_letters, replay_args, start_replay

PROJECT = "bench-project"
IDLE_TIMEOUT = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dead-letters", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=None, help="passed to --rate")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    options = parser.parse_args()
    with fast_emulator() as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        figures = run(count=options.dead_letters, rate=options.rate)
    print(json.dumps(figures, indent=2))
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["lost"] == 0 and figures["left_on_dead_letter_subscription"] == 0 else 1


def run(*, count: int, rate: float | None) -> dict[str, object]:
    from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client

    publisher, subscriber = publisher_client(), subscriber_client()
    names = {}
    for name in ("dead-letters", "orders"):
        topic = publisher.topic_path(PROJECT, name)
        publisher.create_topic(request={"name": topic})
        subscription = subscriber.subscription_path(PROJECT, f"{name}-sub")
        subscriber.create_subscription(request={"name": subscription, "topic": topic})
        names[name] = (topic, subscription)
    started = time.monotonic()
    order_ids = publish_dead_letters(
        publisher, names["dead-letters"][0], count=count, prefix="bench"
    )
    publish_seconds = time.monotonic() - started
    extra = ["--idle-timeout", str(IDLE_TIMEOUT), "-o", "json"]
    if rate is not None:
        extra += ["--rate", str(rate)]
    args = replay_args(dead_letters=names["dead-letters"][1], topic=names["orders"][0], extra=extra)
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        started = time.monotonic()
        process = start_replay(args, log=Path(tmp) / "replay.log")
        stdout, _ = process.communicate()
        seconds = time.monotonic() - started
        if process.returncode != 0:
            sys.stderr.write((Path(tmp) / "replay.log").read_text()[-3000:])
            raise SystemExit(f"replay exited with {process.returncode}")
    summary = json.loads(stdout)
    arrivals = Arrivals(subscriber, names["orders"][1])
    arrivals.pull_until(lambda: len(arrivals.by_order) >= count, timeout=300)
    left = Arrivals(subscriber, names["dead-letters"][1])
    left.pull_until(lambda: False, timeout=5)
    busy = seconds - IDLE_TIMEOUT  # process start-up and exit included
    publisher.stop()
    subscriber.close()
    return {
        "dead_letters": count,
        "publish_dead_letters_seconds": round(publish_seconds, 1),
        "replay_process_seconds": round(seconds, 1),
        "idle_timeout_seconds": IDLE_TIMEOUT,
        "replayed": summary["replayed"],
        "replay_busy_seconds": summary["busy_seconds"],
        "replayed_per_second_of_process": round(count / busy, 0) if busy > 0 else None,
        "replayed_per_second_busy": summary["replayed_per_second"],
        "orders_arrived": len(arrivals.by_order),
        "lost": len(set(order_ids) - set(arrivals.by_order)),
        "duplicated": arrivals.messages - len(arrivals.by_order),
        "left_on_dead_letter_subscription": left.messages,
    }


if __name__ == "__main__":
    raise SystemExit(main())
