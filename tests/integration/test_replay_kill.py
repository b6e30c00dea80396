"""A replay killed with SIGKILL mid-run, then run again, loses no dead letter.

The promise of ``dead-letter replay`` to an operator after an outage: stream through thousands
of dead letters, and if the process dies (Ctrl-C, OOM, a closed laptop) just run it again.
Nothing may be lost (a dead letter is acked only after its copy was published) and at most the
batch in flight may arrive twice (harmless: the dispatcher dedupes by order id). Checked with a
real process, a real SIGKILL and the load-grade emulator, then by counting every order on the
orders subscription and looking for anything left on the dead-letter subscription.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.replay_kit import (
    Arrivals,
    publish_dead_letters,
    replay_args,
    start_replay,
)
from tests.polling import poll
from tests.pubsub.plugin import drain

# Thousands of messages: the load-grade emulator only (pstest would take minutes).
pytestmark = [
    pytest.mark.pubsub,
    pytest.mark.parametrize("pubsub_emulator", ["fast"], indirect=True),
]

DEAD_LETTERS = 5_000
RATE = 500  # per second: the first run needs ~10 s, long enough to be killed mid-way
LEASE = 10  # seconds: what the first run held comes back this long after the kill


def test_a_killed_replay_run_again_loses_nothing(
    pubsub_emulator: Any, pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    dlq = make_topic_subscription(prefix="dlq")
    orders = make_topic_subscription(prefix="orders")
    order_ids = publish_dead_letters(
        pubsub_clients.publisher, dlq.topic, count=DEAD_LETTERS, prefix="kill"
    )
    arrivals = Arrivals(pubsub_clients.subscriber, orders.subscription)
    args = replay_args(
        dead_letters=dlq.subscription,
        topic=orders.topic,
        extra=["--lease-seconds", str(LEASE)],
    )

    first = start_replay([*args, "--rate", str(RATE)], log=tmp_path / "first.log")
    try:
        assert arrivals.pull_until(lambda: arrivals.messages >= 1_000, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    before_second = len(arrivals.by_order)
    assert before_second < DEAD_LETTERS, "the first run finished before it was killed"

    # Idle for longer than the lease: what the killed run held comes back during this run.
    second = start_replay(
        [*args, "--idle-timeout", str(LEASE + 5), "-o", "json"], log=tmp_path / "second.log"
    )
    stdout, _ = second.communicate(timeout=300)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()[-2000:]
    summary = json.loads(stdout)
    assert summary["replayed"] >= DEAD_LETTERS - before_second
    assert summary["failed"] == 0 and summary["stopped"].startswith("no new dead letter")

    assert arrivals.pull_until(lambda: set(arrivals.by_order) >= set(order_ids), timeout=60)
    assert set(arrivals.by_order) == set(order_ids)
    duplicated = arrivals.messages - DEAD_LETTERS
    assert duplicated <= RATE, f"{duplicated} duplicates: more than one batch in flight"
    assert drain(pubsub_clients, dlq.subscription, expected=0, timeout=15) == {}


def test_ctrl_c_acks_what_was_published_and_gives_back_the_rest(
    pubsub_emulator: Any, pubsub_clients: Any, make_topic_subscription: Any, tmp_path: Path
) -> None:
    # 30 s at the paced rate: a loaded machine still finds it running after two batches.
    count, rate = 3_000, 100
    dlq = make_topic_subscription(prefix="dlq")
    orders = make_topic_subscription(prefix="orders")
    publish_dead_letters(pubsub_clients.publisher, dlq.topic, count=count, prefix="int")
    arrivals = Arrivals(pubsub_clients.subscriber, orders.subscription)
    replay = start_replay(
        replay_args(
            dead_letters=dlq.subscription,
            topic=orders.topic,
            extra=["--rate", str(rate), "-o", "json"],
        ),
        log=tmp_path / "replay.log",
    )
    # Judged from the replay's own log (a line per dead letter replayed), not from pulls of
    # the orders subscription, which lagged behind the whole 30 s run in a full CI session.
    log = tmp_path / "replay.log"
    try:
        poll(
            lambda: log.read_text().count('"dead_letter_replayed"') >= 2 * rate,
            60,
            "two batches replayed",
        )
    finally:
        replay.send_signal(signal.SIGINT)
        stdout, _ = replay.communicate(timeout=60)
    assert replay.returncode == 130, (tmp_path / "replay.log").read_text()[-2000:]
    summary = json.loads(stdout)
    assert summary["stopped"] == "interrupted" and 0 < summary["replayed"] < count
    # Given back at once (no lease to wait for): every dead letter not acked is there now.
    left = drain(pubsub_clients, dlq.subscription, expected=count - summary["replayed"])
    assert count - summary["replayed"] <= len(left) <= count - summary["replayed"] + rate
    assert arrivals.pull_until(lambda: arrivals.messages >= summary["replayed"], timeout=60)
