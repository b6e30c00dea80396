"""The stream's inline scheduler: the callback runs at once, and nothing is left to drop.

The client nacks whatever its scheduler still holds when a stream closes; a scheduler that
held messages would spend delivery attempts on shutdown, which the design forbids.
"""

from __future__ import annotations

import threading

from dispatcher.adapters.pubsub_stream import InlineScheduler


def test_the_callback_runs_before_schedule_returns_on_the_same_thread() -> None:
    seen: list[tuple[object, str, int]] = []
    scheduler = InlineScheduler()

    def callback(message: object, *, tag: str) -> None:
        seen.append((message, tag, threading.get_ident()))

    scheduler.schedule(callback, "m1", tag="t")
    assert seen == [("m1", "t", threading.get_ident())]


def test_shutdown_drops_nothing_and_each_stream_has_its_own_ack_queue() -> None:
    first, second = InlineScheduler(), InlineScheduler()
    first.schedule(lambda message: None, "m1")
    assert first.shutdown(await_msg_callbacks=True) == []
    assert first.queue is not second.queue
    assert first.queue is first.queue
