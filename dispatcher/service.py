"""``dispatcher run`` assembled: Pub/Sub intake, engine runner, sink, ops endpoint, reloads.

Shutdown order matters: the engine drains while the stream is still open, because the
client can only deliver acks and nacks while its stream lives; only then is the stream closed
(the client nacks whatever it had not yet handed over).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import pubsub_v1

from dispatcher.adapters.pubsub import DeadLetterPublisher, Delivery, Republisher, subscribe
from dispatcher.adapters.sinks import WorkflowSink
from dispatcher.config import ConfigError, Settings, load_settings
from dispatcher.core.clock import Clock, monotonic
from dispatcher.core.engine import ClusterState, Engine
from dispatcher.logging import get_logger
from dispatcher.metrics import Metrics
from dispatcher.router import Router
from dispatcher.runner import Runner

log = get_logger()


@dataclass
class Service:
    settings: Settings
    subscriber: pubsub_v1.SubscriberClient
    publisher: pubsub_v1.PublisherClient
    sink: WorkflowSink
    cluster: ClusterState
    clock: Clock = monotonic
    metrics: Metrics = field(default_factory=Metrics)
    config_path: Path | None = None
    replica: str | None = None
    _runner: Runner | None = None
    _streams: list[Any] = field(default_factory=list)
    _reloader: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _topic: str | None = None

    def start(self) -> None:
        engine: Engine[Delivery] = Engine(self.settings, cluster=self.cluster, clock=self.clock)
        dead_letters = DeadLetterPublisher(
            self.publisher, self.settings.pubsub.dead_letter_topic_path()
        )
        ps = self.settings.pubsub
        republisher = Republisher(
            self.publisher,
            ps.class_topic_path if ps.routing == "class_topics" else self._intake_topic,
        )
        self._runner = Runner(
            engine,
            sink=self.sink,
            dead_letters=dead_letters,
            clock=self.clock,
            metrics=self.metrics,
            create_workers=self.settings.service.create_workers,
            replica=self.replica,
            reparker=republisher,
        )
        self._runner.start()
        if ps.routing == "class_topics":
            for size_class in self.settings.classes:
                self._streams.append(
                    subscribe(
                        self.subscriber,
                        ps,
                        self._runner.offer,
                        subscription=ps.class_subscription_path(size_class.name),
                        max_messages=size_class.effective_hold_budget(),
                    )
                )
            router = Router(
                self.settings,
                republisher=republisher,
                dead_letters=dead_letters,
                metrics=self.metrics,
            )
            self._streams.append(subscribe(self.subscriber, ps, router.on_message))
        else:
            self._streams.append(subscribe(self.subscriber, ps, self._runner.offer))
        if self.config_path is not None:
            self._reloader = threading.Thread(target=self._watch_config, daemon=True)
            self._reloader.start()
        log.info(
            "dispatcher_started",
            subscription=self.settings.pubsub.subscription_path(),
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
        if any(stream.done() for stream in self._streams):
            return False, "a Pub/Sub stream has ended"
        return True, "ok"

    def stop(self, grace: float | None = None) -> bool:
        """Drain within ``grace`` seconds; True when everything in flight was settled."""
        self._stop.set()
        grace = self.settings.service.drain_seconds if grace is None else grace
        drained = self.runner.drain(grace)
        for stream in self._streams:  # class streams first, the router's (if any) last
            stream.cancel()
            try:
                stream.result(timeout=grace)
            except Exception as exc:  # noqa: BLE001 - shutting down either way
                log.warning("stream_close_failed", error=str(exc))
        log.info("dispatcher_stopped", drained=drained)
        return drained

    def _intake_topic(self, _size_class: str) -> str:
        """Direct mode re-parks onto the intake subscription's own topic."""
        if self._topic is None:
            found = self.subscriber.get_subscription(
                subscription=self.settings.pubsub.subscription_path()
            )
            self._topic = str(found.topic)
        return self._topic

    def apply(self, settings: Settings) -> None:
        """Take new limits without a restart; log what changed."""
        old = self.settings
        if [c.name for c in old.classes] != [c.name for c in settings.classes]:
            log.error("limits_reload_rejected", error="the set of size classes changed; restart")
            return
        changes = _limit_changes(old, settings)
        if not changes:
            return
        self.settings = settings
        engine = self.runner.engine

        def swap() -> list[Any]:
            engine.apply_limits(settings)
            return []

        self.runner.call_soon(swap)
        log.info("limits_reloaded", changes=changes)

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
                log.error("limits_reload_rejected", error=str(exc))


def _mtime(path: Path) -> float | None:
    try:
        # A mounted ConfigMap swaps a symlink; stat follows it to the new content.
        return path.stat().st_mtime
    except OSError:
        return None


def _limit_changes(old: Settings, new: Settings) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for key, value in new.limits.model_dump().items():
        before = getattr(old.limits, key)
        if before != value:
            changes[f"limits.{key}"] = [before, value]
    old_classes = {c.name: c for c in old.classes}
    for size_class in new.classes:
        previous = old_classes.get(size_class.name)
        if previous is None:
            continue
        for key in ("max_live_workflows",):
            if getattr(previous, key) != getattr(size_class, key):
                changes[f"classes.{size_class.name}.{key}"] = [
                    getattr(previous, key),
                    getattr(size_class, key),
                ]
    return changes
