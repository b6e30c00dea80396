"""The loop behind ``dispatcher publish``: check each line, pace it, publish it, count replies.

Why apart from the command: the command resolves names and prints; this holds what must be
right line by line — a refused line is recorded and never sent, the rate is a token bucket on
orders sent, and the first failed publish stops the reading so nothing more goes out after it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dispatcher.commands.progress import Meter
from dispatcher.core.ratelimit import TokenBucket
from dispatcher.publish import InvalidOrder, OrderCheck, OrderPublisher

#: How often the progress display is updated, in lines (updating per line costs more than a check).
METER_EVERY = 200
#: How long the last confirmations may take before the run counts them as not published.
PUBLISH_TIMEOUT_SECONDS = 120.0
MIN_WAIT_SECONDS = 1e-6


@dataclass(frozen=True, slots=True)
class RefusedLine:
    line: int
    reason: str
    stage: str
    detail: str
    order_id: str | None


@dataclass
class Tally:
    """What happened to every line read."""

    lines: int = 0
    orders: int = 0
    refused: list[RefusedLine] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    repeated: int = 0
    sent: int = 0
    published: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str = "end of input"
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def settle(self, future: Future[str]) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self.published += 1
            else:
                self.failed += 1
                if len(self.errors) < 10:
                    self.errors.append(str(error))

    def to_json(self, *, topic: str | None, dry_run: bool) -> dict[str, Any]:
        return {
            "topic": topic,
            "dry_run": dry_run,
            "lines": self.lines,
            "orders": self.orders,
            "invalid": len(self.refused),
            "repeated_order_ids": self.repeated,
            "sent": self.sent,
            "published": self.published,
            "failed": self.failed,
            "unconfirmed": self.sent - self.published - self.failed,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "classes": dict(self.classes),
            "rejected": [
                {
                    "line": r.line,
                    "reason": r.reason,
                    "stage": r.stage,
                    "detail": r.detail,
                    "order_id": r.order_id,
                }
                for r in self.refused
            ],
            "errors": self.errors,
        }


def publish_lines(
    lines: Iterable[bytes],
    *,
    check: OrderCheck,
    publisher: OrderPublisher | None,
    bucket: TokenBucket | None,
    meter: Meter,
    sleep: Callable[[float], None] = time.sleep,
) -> Tally:
    """Check every non-blank line; publish the valid ones unless ``publisher`` is None."""
    tally = Tally()
    seen: set[str] = set()
    failure = threading.Event()
    started = time.monotonic()
    for number, raw in enumerate(lines, start=1):
        if failure.is_set():
            tally.stopped = f"a publish failed; line {number} and after were not read"
            break
        tally.lines = number
        if number % METER_EVERY == 0:
            meter.update(done=number)
        data = raw.strip()
        if not data:
            continue
        try:
            checked = check(data)
        except InvalidOrder as exc:
            tally.refused.append(
                RefusedLine(number, exc.reason.value, exc.stage, exc.detail, exc.order_id)
            )
            continue
        tally.orders += 1
        tally.classes[checked.size_class] += 1
        if checked.order_id in seen:
            tally.repeated += 1
        seen.add(checked.order_id)
        if publisher is None:
            continue
        while bucket is not None and not bucket.try_acquire():
            # at least a microsecond: a wait rounded to ~1e-17 s would never move a clock
            sleep(max(bucket.wait_time(), MIN_WAIT_SECONDS))
        future = publisher.publish_checked(checked)
        tally.sent += 1
        future.add_done_callback(tally.settle)
        future.add_done_callback(lambda done: _stop_on_failure(done, failure))
    meter.update(done=tally.lines)
    if publisher is not None:
        try:
            publisher.flush(timeout=PUBLISH_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            tally.stopped = str(exc)
    tally.seconds = time.monotonic() - started
    return tally


def _stop_on_failure(done: Future[str], failure: threading.Event) -> None:
    if done.exception() is not None:
        failure.set()
