"""How fast ``dispatcher publish`` and ``OrderPublisher`` send a swarm to the fast emulator.

Why: upstream teams ask how long loading 100,000 orders takes, and the check before each send
(the service's intake) must not be what limits it. Two measurements: the command as a separate
process (reading a file, progress, summary), and the Python API in this process.

    python -m bench.publish_bench --orders 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.measure import fast_emulator
from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client
from dispatcher.operator.examples import example_orders
from dispatcher.publish import OrderPublisher

PROJECT = "bench-project"


def make_topic(name: str) -> str:
    publisher, subscriber = publisher_client(), subscriber_client()
    topic = publisher.topic_path(PROJECT, name)
    publisher.create_topic(request={"name": topic})
    subscription = subscriber.subscription_path(PROJECT, f"{name}-sub")
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    publisher.stop()
    subscriber.close()
    return str(topic)


def command_run(path: Path, topic: str) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "publish", str(path), "--topic", topic, "-o", "json"],
        capture_output=True,
        check=False,
        env={**os.environ, "CI": "true"},
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"publish exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    summary = json.loads(done.stdout)
    return {
        "published": summary["published"],
        "seconds_in_process": summary["seconds"],
        "seconds_wall": round(took, 3),
        "orders_per_second": round(summary["published"] / took),
    }


def api_run(lines: list[str], topic: str) -> dict[str, object]:
    started = time.perf_counter()
    with OrderPublisher(topic) as publisher:
        futures = [publisher.publish(line) for line in lines]
    took = time.perf_counter() - started
    ids = {future.result(timeout=0) for future in futures}
    return {
        "published": len(ids),
        "seconds": round(took, 3),
        "orders_per_second": round(len(ids) / took),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    lines = list(example_orders(args.orders, seed=11))
    with fast_emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        path = Path(tmp) / "orders.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = {
            "orders": args.orders,
            "command": command_run(path, make_topic(f"cmd-{uuid.uuid4().hex[:8]}")),
            "api": api_run(lines, make_topic(f"api-{uuid.uuid4().hex[:8]}")),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
