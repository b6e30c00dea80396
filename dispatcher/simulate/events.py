"""The simulation's clock and agenda: a heap of (time, action), and what still counts as work.

Some events only matter while there is work (a spot node's preemption, Argo's TTL deleting a
finished Workflow object): they are *background* events, and a run ends when only those are
left, so a far-off preemption draw never stretches the simulated time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from dispatcher.core.clock import FakeClock

Action = Callable[[], None]


class Agenda:
    def __init__(self) -> None:
        self.clock = FakeClock(start=0.0)
        self._heap: list[tuple[float, int, bool, Action]] = []
        self._seq = itertools.count()
        self._work = 0  # events that are not background

    @property
    def now(self) -> float:
        return self.clock.now

    def at(self, when: float, action: Action, *, background: bool = False) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), background, action))
        if not background:
            self._work += 1

    def after(self, seconds: float, action: Action, *, background: bool = False) -> None:
        self.at(self.clock.now + seconds, action, background=background)

    def next_time(self) -> float | None:
        """When the next event is due; None when only background events are left."""
        return self._heap[0][0] if self._work else None

    def run_until(self, when: float) -> None:
        """Move the clock to ``when`` and run every event due by then, in order."""
        self.clock.now = max(self.clock.now, when)
        heap = self._heap
        while heap and heap[0][0] <= when:
            _at, _seq, background, action = heapq.heappop(heap)
            if not background:
                self._work -= 1
            action()
