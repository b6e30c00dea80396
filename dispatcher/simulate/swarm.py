"""What arrives, and when: a swarm of orders as a lazy stream of (time, line, input size, the
optional steps the order sets).

A swarm is either a JSON-lines file of orders (as ``dispatcher publish`` sends them) or a
generator spec, ``gen:<curve>:n=<orders>[,seed=..][,invalid=<share>][,seconds=..][,rate=..]``,
drawing from the same heavy-tailed generator as ``dispatcher example-orders``. The curve says
when each order is published: ``burst`` (all at once), ``ramp`` (the rate rises linearly over
``seconds``) or ``steady`` (``rate`` orders per second). A file takes a curve the same way:
``orders.jsonl`` is a burst, ``orders.jsonl@ramp:seconds=600`` a ramp.

The stream is lazy so a million-order swarm never sits in memory as a million strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dispatcher.operator.examples import sized_example_orders

CURVES = ("burst", "ramp", "steady")


#: The optional steps an order sets itself, as sorted (name, on) pairs: the cluster counts
#: the pods its DAG runs from them and the configuration's defaults.
StepFlags = tuple[tuple[str, bool], ...]
NO_FLAGS: StepFlags = ()
_ENRICH_ON: StepFlags = (("enrich", True),)
_ENRICH_OFF: StepFlags = (("enrich", False),)


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float
    line: bytes
    size_bytes: int
    steps: StepFlags = NO_FLAGS


@dataclass(frozen=True)
class Swarm:
    """A parsed swarm spec; :meth:`arrivals` streams it (again, identically, each call)."""

    count: int
    curve: str = "burst"
    seconds: float = 0.0
    rate: float = 0.0
    seed: int = 7
    invalid_share: float = 0.0
    path: Path | None = None

    def describe(self) -> str:
        source = str(self.path) if self.path else f"generated (seed {self.seed})"
        return f"{self.count:,} orders, {self.curve}, {source}"

    def at(self, index: int) -> float:
        """When order ``index`` of ``count`` is published."""
        if self.curve == "ramp" and self.count:
            return self.seconds * math.sqrt(index / self.count)
        if self.curve == "steady":
            return index / self.rate
        return 0.0

    def arrived(self, now: float) -> int:
        """How many orders are published by ``now`` (the inverse of :meth:`at`)."""
        if self.curve == "ramp" and self.seconds > 0:
            return min(self.count, math.floor(self.count * (now / self.seconds) ** 2) + 1)
        if self.curve == "steady":
            return min(self.count, math.floor(now * self.rate) + 1)
        return self.count

    def arrivals(self) -> Iterator[Arrival]:
        if self.path is not None:
            for index, (line, size, steps) in enumerate(_file_lines(self.path)):
                yield Arrival(self.at(index), line.encode(), size, steps)
            return
        lines = sized_example_orders(self.count, seed=self.seed, invalid_share=self.invalid_share)
        for index, (line, size) in enumerate(lines):
            # The generator writes its lines by hand, compact, with "enrich" always set: a
            # substring says what parsing would, for a fraction of the cost.
            steps = _ENRICH_ON if '"enrich":true' in line else _ENRICH_OFF if size else NO_FLAGS
            yield Arrival(self.at(index), line.encode(), size, steps)


def _file_lines(path: Path) -> Iterator[tuple[str, int, StepFlags]]:
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.strip()
            if line:
                yield (line, *_size_and_steps(line))


def _size_and_steps(line: str) -> tuple[int, StepFlags]:
    try:
        order = json.loads(line)
        size = order["input"]["size_bytes"]
    except (ValueError, KeyError, TypeError):
        return 0, NO_FLAGS
    if not isinstance(size, int) or isinstance(size, bool):
        return 0, NO_FLAGS
    steps = order.get("steps")
    if not isinstance(steps, dict):
        return size, NO_FLAGS
    return size, tuple(sorted((str(k), v) for k, v in steps.items() if isinstance(v, bool)))


def parse_swarm(spec: str) -> Swarm:
    """``gen:burst:n=1000``, ``gen:ramp:n=1000,seconds=600``, ``orders.jsonl[@steady:rate=50]``."""
    if spec.startswith("gen:"):
        curve, _, options = spec[4:].partition(":")
        params = _params(options)
        if "n" not in params:
            raise ValueError(f"{spec}: a generated swarm needs n=<orders>")
        return _checked(
            Swarm(
                count=int(params["n"]),
                curve=curve,
                seconds=float(params.get("seconds", 0)),
                rate=float(params.get("rate", 0)),
                seed=int(params.get("seed", 7)),
                invalid_share=float(params.get("invalid", 0)),
            )
        )
    file_part, _, curve_part = spec.partition("@")
    path = Path(file_part)
    if not path.is_file():
        raise ValueError(f"{spec}: no such file (or use gen:<curve>:n=<orders>)")
    curve, _, options = (curve_part or "burst").partition(":")
    params = _params(options)
    with path.open(encoding="utf-8") as handle:
        count = sum(1 for raw in handle if raw.strip())
    return _checked(
        Swarm(
            count=count,
            curve=curve,
            seconds=float(params.get("seconds", 0)),
            rate=float(params.get("rate", 0)),
            path=path,
        )
    )


def _params(options: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected key=value")
        params[key.strip()] = value.strip().replace("_", "")
    return params


def _checked(swarm: Swarm) -> Swarm:
    if swarm.curve not in CURVES:
        raise ValueError(f"curve {swarm.curve!r}: expected one of {', '.join(CURVES)}")
    if swarm.count < 0:
        raise ValueError("n must be >= 0")
    if swarm.curve == "ramp" and swarm.seconds <= 0:
        raise ValueError("a ramp needs seconds=<duration> > 0")
    if swarm.curve == "steady" and swarm.rate <= 0:
        raise ValueError("a steady swarm needs rate=<orders per second> > 0")
    return swarm
