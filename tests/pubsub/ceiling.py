"""Measure how fast a plain google-cloud-pubsub subscriber can pull and ack from a server.

Why: the dispatcher's throughput tests need a Pub/Sub server that is not itself the bottleneck.
This gives the ceiling of "client + server" with a subscriber that does nothing but ack, so a
dispatcher figure can be read against it (and so a too-slow server is noticed, as pstest is).

Usage (starts the built server itself; build first with servers/pubsub/build.sh):
    .venv/bin/python -m tests.pubsub.ceiling --kind fast -n 20000
    .venv/bin/python -m tests.pubsub.ceiling --kind pstest -n 1000
    .venv/bin/python -m tests.pubsub.ceiling --host 127.0.0.1:8085 -n 20000
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROJECT = "test-project"


@contextlib.contextmanager
def _emulator_env(host: str) -> Iterator[None]:
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


def measure_pull_ack_ceiling(
    host: str,
    n_messages: int,
    *,
    payload_bytes: int = 64,
    max_outstanding: int = 1000,
    timeout_s: float | None = None,
) -> float:
    """Publish ``n_messages`` small messages, then return streaming-pull+ack messages/s.

    The clock runs from ``subscribe()`` until the callback has acked the last message. The
    subscriber uses the client's default flow control (``max_outstanding`` messages).
    """
    from google.cloud import pubsub_v1

    from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client

    if n_messages <= 0:
        raise ValueError("n_messages must be positive")
    deadline_s = timeout_s if timeout_s is not None else max(120.0, n_messages / 50)
    with _emulator_env(host):
        publisher = publisher_client(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=1000, max_bytes=4 << 20, max_latency=0.01
            )
        )
        subscriber = subscriber_client()
    suffix = uuid.uuid4().hex[:12]
    topic = publisher.topic_path(PROJECT, f"ceiling-{suffix}")
    subscription = subscriber.subscription_path(PROJECT, f"ceiling-{suffix}")
    try:
        publisher.create_topic(request={"name": topic})
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60}
        )
        body = b"x" * payload_bytes
        futures = [publisher.publish(topic, body) for _ in range(n_messages)]
        for f in futures:
            f.result(timeout=deadline_s)

        counter = itertools.count(1)  # next() on it is atomic under the GIL: no lock needed
        done = [0]

        def callback(message: Any) -> None:
            message.ack()
            done[0] = next(counter)

        flow = pubsub_v1.types.FlowControl(max_messages=max_outstanding)
        start = time.perf_counter()
        future = subscriber.subscribe(subscription, callback, flow_control=flow)
        try:
            limit = time.monotonic() + deadline_s
            while done[0] < n_messages:
                if time.monotonic() > limit:
                    raise TimeoutError(f"only {done[0]}/{n_messages} acked in {deadline_s}s")
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
        finally:
            future.cancel()
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        return n_messages / elapsed
    finally:
        with contextlib.suppress(Exception):
            subscriber.delete_subscription(request={"subscription": subscription})
        with contextlib.suppress(Exception):
            publisher.delete_topic(request={"topic": topic})
        publisher.stop()
        subscriber.close()


def main(argv: list[str] | None = None) -> int:
    """CLI: measure against a given host or a freshly started built server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="host:port of a running server")
    where.add_argument("--kind", choices=["pstest", "fast"], help="start this built server")
    parser.add_argument("-n", "--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    from dispatcher.local import pubsub as binaries
    from dispatcher.local.pubsub import run_binary, wait_until_serving

    with contextlib.ExitStack() as stack:
        if args.kind:
            path = binaries.binary(args.kind)
            if path is None:
                print(f"{args.kind} not built: run servers/pubsub/build.sh", file=sys.stderr)
                return 2
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ceiling-")))
            host = stack.enter_context(run_binary(path, log_dir))
        else:
            host = args.host
            wait_until_serving(host, 10)
        label = args.kind or host
        for _ in range(args.repeat):
            rate = measure_pull_ack_ceiling(host, args.messages)
            print(f"{label}: {args.messages} messages, {rate:,.0f} msgs/s pull+ack", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
