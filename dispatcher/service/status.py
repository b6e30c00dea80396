"""What one replica tells ``dispatcher status``: its part of each class, served at ``/status``.

The engine belongs to the loop thread, so the HTTP thread never reads it. Instead the loop
hands the board a fresh snapshot twice a second (with the gauges); the board keeps a minute
of history to turn counters into per-minute rates, and the HTTP thread only reads the last
snapshot, an immutable value swapped in whole.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

RATE_WINDOW_SECONDS = 60.0


class StatusBoard:
    def __init__(
        self, *, replica: str, environment: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._replica = replica
        self._environment = environment
        self._clock = clock
        self._started = clock()
        self._history: deque[tuple[float, dict[str, float], float]] = deque()
        self._snapshot: dict[str, Any] = {"replica": replica, "ready": False, "classes": {}}

    def update(self, engine: Any, *, created: Mapping[str, float], dead_lettered: float) -> None:
        """On the loop thread: read the engine, keep the counters' recent history."""
        now = self._clock()
        self._history.append((now, dict(created), dead_lettered))
        while self._history and now - self._history[0][0] > RATE_WINDOW_SECONDS:
            self._history.popleft()
        first_at, first_created, first_dead = self._history[0]
        minutes = max((now - first_at) / 60.0, 1 / 60.0)
        limits = engine.limits
        held = engine.held_orders()
        in_flight = engine.in_flight_by_class()
        live = engine.live_by_class()
        classes = {}
        for name in held:
            hold = engine.last_hold.get(name)
            classes[name] = {
                "held": held[name],
                "in_flight": in_flight.get(name, 0),
                "live": live.get(name, 0),
                "cap": limits.class_caps.get(name),
                "hold": None if hold is None else str(hold.value),
                "created_per_minute": round(
                    (created.get(name, 0.0) - first_created.get(name, 0.0)) / minutes, 2
                ),
            }
        self._snapshot = {
            "replica": self._replica,
            "environment": self._environment,
            "ready": True,
            "uptime_seconds": round(now - self._started, 1),
            "workflows_per_second": limits.workflows_per_second,
            "dead_letters_per_minute": round((dead_lettered - first_dead) / minutes, 2),
            "classes": classes,
        }

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot

    def body(self) -> tuple[int, bytes, str]:
        """The ``/status`` route: the last snapshot as JSON."""
        return 200, json.dumps(self._snapshot).encode(), "application/json"
