"""The simulation's clock and agenda: a heap of (time, action), and what still counts as work.

Some events only matter while there is work (a spot node's preemption, Argo's TTL deleting a
finished Workflow object): they are *background* events, and a run ends when only those are
left, so a far-off preemption draw never stretches the simulated time.

Most events (a step pod ending, the next one bound) change nothing the dispatcher's engine can
see. Ticking the engine after each of them cost more than the events themselves, so the agenda
runs events back to back until one calls :meth:`Agenda.notice` (a Workflow created, finished or
deleted: what admission counts) or the next one is due after a time the engine asked for.
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
        self._noticed = False

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

    def notice(self) -> None:
        """The event running now changed what the engine sees: stop after it."""
        self._noticed = True

    def run_until(self, when: float, *, until: float | None = None) -> None:
        """Move the clock to ``when`` and run the events due, in order, each at its own time:
        those due by ``when``, and after them those due by ``until`` (default ``when``) until
        one of them calls :meth:`notice`."""
        clock, heap = self.clock, self._heap
        clock.now = max(clock.now, when)
        bound = when if until is None else max(when, until)
        self._noticed = False
        while heap and heap[0][0] <= bound:
            at, _seq, background, action = heapq.heappop(heap)
            if at > clock.now:
                if self._noticed:
                    heapq.heappush(heap, (at, _seq, background, action))
                    return
                clock.now = at
            if not background:
                self._work -= 1
            action()
