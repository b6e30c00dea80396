"""The stream's inline scheduler: the callback runs at once, and nothing is left to drop.

The client nacks whatever its scheduler still holds when a stream closes; a scheduler that
held messages would spend delivery attempts on shutdown, which the design forbids.
"""

from __future__ import annotations

import threading

from dispatcher.adapters.pubsub_stream import InlineScheduler, open_stream
from tests.unit.helpers import settings as make_settings


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


class RecordingSubscriber:
    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def subscribe(self, subscription: str, **kwargs: object) -> None:
        self.calls.append({"subscription": subscription, **kwargs})


def test_enqueue_only_streams_run_inline_and_the_router_keeps_the_pool() -> None:
    subscriber = RecordingSubscriber()
    settings = make_settings().pubsub
    open_stream(subscriber, settings, lambda message: None, subscription="s/engine")
    open_stream(subscriber, settings, lambda message: None, subscription="s/router", inline=False)
    engine, router = subscriber.calls
    assert isinstance(engine["scheduler"], InlineScheduler)
    assert router["scheduler"] is None  # the client's own pool of threads
    assert engine["await_callbacks_on_shutdown"] is router["await_callbacks_on_shutdown"] is True
