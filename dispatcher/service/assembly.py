"""``dispatcher run`` assembled: Pub/Sub intake, the loop and its executor, reloads, shutdown.

Shutdown runs against one deadline (``service.drain_seconds``, shorter than the pod's
``terminationGracePeriodSeconds``). The streams are closed first (nothing new arrives, and no
re-parked copy comes back to this replica); then the engine drains: held orders are re-parked
(a fresh copy published, then the deliveries acked with Acknowledge calls: no nack, no
attempt spent), creates in flight finish, publishes settle.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.adapters.cluster_memory import StaticMembers
from dispatcher.adapters.ledger_memory import MemoryLedger
from dispatcher.adapters.pubsub import Delivery
from dispatcher.adapters.pubsub_stream import UnaryAcks, open_stream
from dispatcher.adapters.sinks import WorkflowSink
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.core.clock import Clock, monotonic
from dispatcher.core.engine import Engine
from dispatcher.core.flights import EngineConfig
from dispatcher.core.limits import LIVE_FIELDS, LimitsChanged, compare, limits_of
from dispatcher.core.ports import Claims, ClusterState, Members, OrderLedger
from dispatcher.logging import get_logger
from dispatcher.service.class_streams import ClassStreams, state_moves
from dispatcher.service.executor import Executor
from dispatcher.service.loop import Runner
from dispatcher.service.metrics import Metrics
from dispatcher.service.router import Router

log = get_logger()

#: Allocations between two young-generation collections in a dispatcher process (Python's
#: default is 700). See :func:`settle_heap`.
GC_YOUNG_THRESHOLD = 7000


def settle_heap() -> None:
    """Make Python's cycle collector cheap for a long-running dispatcher process.

    Called once per process, after the clients and the configuration exist and before orders
    flow (``dispatcher run``; the benchmark does the same). ``gc.freeze()`` moves every object
    alive then (imported modules, SDK clients: they live as long as the process) out of the
    collector's reach, so a full collection no longer walks them; a larger young-generation
    threshold makes collections ten times rarer. Measured (docs/performance.md): the collector
    took 10-13 µs of CPU per order before, about 1 after. Nothing is freed later than before
    except cyclic garbage, and orders make none: reference counting frees them as ever.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


@dataclass
class Service:
    settings: Settings
    subscriber: Any
    publisher: Any
    sink: WorkflowSink
    cluster: ClusterState
    members: Members = field(default_factory=StaticMembers)  # one replica
    ledger: OrderLedger = field(default_factory=MemoryLedger)  # no memory beyond the process
    claims: Claims | None = None  # one replica needs none
    clock: Clock = monotonic
    metrics: Metrics = field(default_factory=Metrics)
    config_path: Path | None = None
    replica: str = ""
    _runner: Runner | None = None
    _streams: list[Any] = field(default_factory=list)
    _reloader: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _router: Router | None = None
    _class_streams: ClassStreams | None = None

    def start(self) -> None:
        ps = self.settings.pubsub
        repark_topic = self._repark_topic()  # resolved here: never a blocking call in the loop
        engine: Engine[Delivery] = Engine(
            self.settings,
            cluster=self.cluster,
            members=self.members,
            clock=self.clock,
            config=EngineConfig(
                identity=self.replica, max_in_flight=self.settings.service.create_workers
            ),
            message_id=lambda delivery: str(delivery.message_id),
        )

        def make_executor(
            *, post: Callable[[object], None], submit: Callable[..., Any]
        ) -> Executor[Delivery]:
            return Executor(
                sink=self.sink,
                publisher=self.publisher,
                ledger=self.ledger,
                dead_letter_topic=ps.dead_letter_topic_path(),
                repark_topic=repark_topic,
                post=post,
                submit=submit,
                metrics=self.metrics,
                claims=self.claims,
                contains=self.cluster.contains,
            )

        self._runner = Runner(
            engine,
            make_executor=make_executor,
            clock=self.clock,
            metrics=self.metrics,
            create_workers=self.settings.service.create_workers,
        )
        self._runner.start()
        if ps.routing == "class_topics":
            self._class_streams = ClassStreams(
                self.settings,
                subscriber=self.subscriber,
                put=self._runner.offer,
                executor=self._runner.executor,
            )
            self._class_streams.open(c.name for c in self.settings.classes if c.state == "active")
            self._router = Router(self.settings, publisher=self.publisher, metrics=self.metrics)
            self._streams.append(
                open_stream(
                    self.subscriber,
                    ps,
                    self._router.on_message,
                    subscription=ps.subscription_path(),
                    inline=False,  # the router publishes: not for the client's own thread
                )
            )
        else:
            self._streams.append(
                open_stream(
                    self.subscriber, ps, self._runner.offer, subscription=ps.subscription_path()
                )
            )
        if self.config_path is not None:
            self._reloader = threading.Thread(target=self._watch_config, daemon=True)
            self._reloader.start()
        log.info(
            "dispatcher_started",
            subscription=ps.subscription_path(),
            environment=self.settings.environment,
        )

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise RuntimeError("the service is not started")
        return self._runner

    def healthy(self) -> tuple[bool, str]:
        runner = self._runner
        if runner is None or not runner.alive():
            return False, "engine thread is not running"
        if any(stream.done() for stream in self._all_streams()):
            return False, "a Pub/Sub stream has ended"
        return True, "ok"

    def stop(self, grace: float | None = None) -> bool:
        """Drain within one deadline; True when everything held was settled in time.

        The streams are closed first, so nothing new arrives and no re-parked copy comes
        back to this replica; from then on deliveries are acked with Acknowledge calls
        (the client's own acks need the stream). Then the engine drains.
        """
        self._stop.set()
        deadline = time.monotonic() + (
            self.settings.service.drain_seconds if grace is None else grace
        )
        acks = UnaryAcks(self.subscriber)
        self.runner.executor.unary_acks = acks
        if self._router is not None:
            self._router.unary_acks = acks
        streams = self._all_streams()
        for stream in streams:
            stream.cancel()
        for stream in streams:
            try:
                stream.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - shutting down either way
                log.warning("stream_close_failed", error=str(exc))
        drained = self.runner.drain(deadline - time.monotonic())
        self.runner.close(max(0.0, deadline - time.monotonic()))
        log.info("dispatcher_stopped", drained=drained, acknowledge_calls=acks.calls)
        return drained

    def _all_streams(self) -> list[Any]:
        held = self._class_streams
        return self._streams + ([] if held is None else held.streams())

    def _repark_topic(self) -> Callable[[str], str]:
        ps = self.settings.pubsub
        if ps.routing == "class_topics":
            return ps.class_topic_path
        found = self.subscriber.get_subscription(subscription=ps.subscription_path())
        topic = str(found.topic)
        return lambda _size_class: topic

    def apply(self, settings: Settings) -> bool:
        """A changed file: take its live limits, or refuse it whole (never half-applied)."""
        reload = compare(self.settings, settings)
        if not reload.accepted:
            log.error(
                "limits_reload_refused",
                fields=list(reload.refused),
                live_fields=list(LIVE_FIELDS),
                error="only the live fields may change without a restart; kept the old values",
            )
            return False
        if not reload.changes:
            return True
        held, freed = state_moves(self.settings, settings)
        self.settings = settings
        streams = self._class_streams if held or freed else None
        if held and streams is not None:  # closed first: what the engine re-parks stays away
            streams.close(held, timeout=settings.service.drain_seconds)
        self.runner.limits_changed(LimitsChanged(limits_of(settings)))
        if freed and streams is not None:
            streams.open(freed)
        log.info("limits_reloaded", changes={k: list(v) for k, v in reload.changes.items()})
        return True

    def _watch_config(self) -> None:
        path = self.config_path
        if path is None:
            return
        last = _mtime(path)
        while not self._stop.wait(self.settings.service.reload_seconds):
            current = _mtime(path)
            if current == last:
                continue
            last = current
            try:
                self.apply(load_settings(path))
            except ConfigError as exc:
                log.error("limits_reload_refused", error=str(exc))


def _mtime(path: Path) -> float | None:
    try:
        # A mounted ConfigMap swaps a symlink; stat follows it to the new content.
        return path.stat().st_mtime
    except OSError:
        return None
