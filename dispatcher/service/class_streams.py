"""The per-class streams of ``class_topics`` routing, closed and opened as classes are held.

Why: pausing or draining a class must stop its subscription pulling, so its backlog waits in
Pub/Sub (no delivery attempt spent) while every other class's stream goes on. A stream is
closed before the engine lets go of what the class holds, so the copies it re-parks onto the
class's topic stay there; it is opened again when the class is resumed.

The client acks a delivery only through the stream it came on. Each stream therefore tags its
messages with a :class:`StreamPath` object of its own; deliveries whose stream is closed are
acked by the executor with ``Acknowledge`` calls instead (``Executor.closed_streams``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from dispatcher.adapters.pubsub import Delivery
from dispatcher.adapters.pubsub_stream import UnaryAcks, open_stream
from dispatcher.core.settings import Settings
from dispatcher.logging import get_logger
from dispatcher.service.executor import Executor

log = get_logger()


class StreamPath(str):
    """A subscription path that also names one stream: compared by identity, not text."""

    __slots__ = ()


class ClassStreams:
    def __init__(
        self,
        settings: Settings,
        *,
        subscriber: Any,
        put: Callable[[Delivery], None],
        executor: Executor[Delivery],
    ) -> None:
        self._settings = settings
        self._subscriber = subscriber
        self._put = put
        self._executor = executor
        self._open: dict[str, tuple[StreamPath, Any]] = {}
        self._closed: list[StreamPath] = []  # kept alive: their ids name closed streams
        self._lock = threading.Lock()  # the reloader and shutdown may both close

    def open(self, names: Iterable[str]) -> None:
        ps = self._settings.pubsub
        for name in names:
            with self._lock:
                if name in self._open:
                    continue
                tag = StreamPath(ps.class_subscription_path(name))
                size_class = self._settings.size_class(name)
                stream = open_stream(
                    self._subscriber,
                    ps,
                    self._put,
                    subscription=tag,
                    max_messages=size_class.effective_hold_budget(),
                )
                self._open[name] = (tag, stream)
            log.info("class_stream_opened", size_class=name, subscription=str(tag))

    def close(self, names: Iterable[str], *, timeout: float) -> None:
        """Stop pulling ``names``; return once their callbacks have run (or ``timeout``)."""
        for name in names:
            with self._lock:
                found = self._open.pop(name, None)
                if found is None:
                    continue
                tag, stream = found
                self._closed.append(tag)
                if self._executor.late_acks is None:
                    self._executor.late_acks = UnaryAcks(self._subscriber)
                self._executor.closed_streams = frozenset(id(t) for t in self._closed)
            stream.cancel()
            try:
                stream.result(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - closed either way
                log.warning("stream_close_failed", size_class=name, error=str(exc))
            log.info("class_stream_closed", size_class=name, subscription=str(tag))

    def streams(self) -> list[Any]:
        with self._lock:
            return [stream for _, stream in self._open.values()]


def state_moves(old: Settings, new: Settings) -> tuple[list[str], list[str]]:
    """Classes that stop being active (to close) and that become active again (to open)."""
    was = {c.name: c.state for c in old.classes}
    held = [c.name for c in new.classes if c.state != "active" and was[c.name] == "active"]
    freed = [c.name for c in new.classes if c.state == "active" and was[c.name] != "active"]
    return held, freed
