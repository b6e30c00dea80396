"""(a) and (c) in several rounds, side by side: a (c)/(a) ratio that one busy second cannot make.

Why: on a shared 2-core machine one (a) run and one (c) run a few seconds apart measured the
ratio anywhere between 46 % and 79 %: another session's burst during one of the two phases moves
it by a third. So each round runs (a) and (c) back to back (alternating which goes first, so
a drift in load does not always favour the same one), the ratio is taken within each round, and
the report gives the median round and the spread. The engine-alone run (no Pub/Sub) is repeated
in every round for the same reason. Beside it, the same ratio by CPU: (a)'s process CPU per
order over (c)'s. A busy machine slows both phases' clocks but hardly their CPU per order, so
that figure says whether the dispatcher got cheaper even when the throughput ratio is noise.

The median round's phase figures are what the tables and the targets use; every round's figures
go to the JSON report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import median
from typing import Any

from bench.ceiling import phase_ceiling
from bench.dispatcher_run import engine_alone, phase_dispatcher
from bench.harness import Bench
from bench.results import PhaseResult


@dataclass
class Round:
    """One round: (a), (c) and the engine alone, measured within a few seconds of each other."""

    ceiling: PhaseResult
    dispatcher: PhaseResult
    engine: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.dispatcher.orders_per_second / self.ceiling.orders_per_second

    @property
    def cpu_ratio(self) -> float:
        """(a)'s process CPU per order over (c)'s: the same ratio as the GIL-bound process
        would reach with a core of its own; other sessions' load moves it far less."""
        dispatcher_us = self.dispatcher.bench_cpu_us_per_order
        return self.ceiling.bench_cpu_us_per_order / dispatcher_us if dispatcher_us else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "ceiling_orders_per_second": self.ceiling.orders_per_second,
            "dispatcher_orders_per_second": self.dispatcher.orders_per_second,
            "ratio": round(self.ratio, 3),
            "cpu_ratio": round(self.cpu_ratio, 3),
            "ceiling_cpu_us_per_order": self.ceiling.bench_cpu_us_per_order,
            "dispatcher_cpu_us_per_order": self.dispatcher.bench_cpu_us_per_order,
            "engine_thread_us_per_order": self.dispatcher.thread_cpu_us_per_order.get("engine"),
            "engine_alone_thread_us_per_order": self.engine["engine_thread_us_per_order"],
            "machine_cpu_ceiling": self.ceiling.cpu.machine,
            "machine_cpu_dispatcher": self.dispatcher.cpu.machine,
        }


def spread(values: list[float]) -> dict[str, float]:
    """Median, lowest and highest of ``values`` (at least one)."""
    if not values:
        raise ValueError("no values")
    return {"median": median(values), "min": min(values), "max": max(values)}


def median_round(rounds: list[Round]) -> Round:
    """The round whose ratio is the median (the lower middle one for an even count)."""
    if not rounds:
        raise ValueError("no rounds")
    ranked = sorted(rounds, key=lambda r: r.ratio)
    return ranked[(len(ranked) - 1) // 2]


def run_rounds(
    bench: Bench,
    orders: int,
    rounds: int,
    *,
    log: Callable[[str], None],
) -> list[Round]:
    """``rounds`` rounds of (a), (c) and the engine alone; odd rounds run (c) before (a)."""
    done: list[Round] = []
    for index in range(rounds):
        log(f"round {index + 1}/{rounds}: (a) ceiling and (c) dispatcher, {orders:,} orders each")
        if index % 2 == 0:
            ceiling = phase_ceiling(bench, orders)
            dispatcher = phase_dispatcher(bench, orders)
        else:
            dispatcher = phase_dispatcher(bench, orders)
            ceiling = phase_ceiling(bench, orders)
        bench.delete_workflows()
        engine = engine_alone(bench, orders)
        done.append(Round(ceiling, dispatcher, engine))
        log(
            f"round {index + 1}: (a) {ceiling.orders_per_second:,.0f}/s, "
            f"(c) {dispatcher.orders_per_second:,.0f}/s, (c)/(a) {done[-1].ratio:.0%}"
        )
    return done


def rounds_report(rounds: list[Round]) -> dict[str, Any]:
    """What the JSON report and the terminal say about all rounds."""
    engine_alone_us = [r.engine["engine_thread_us_per_order"] for r in rounds]
    engine_in_c = [r.dispatcher.thread_cpu_us_per_order.get("engine", 0.0) for r in rounds]
    return {
        "rounds": len(rounds),
        "ratio": spread([round(r.ratio, 3) for r in rounds]),
        "cpu_ratio": spread([round(r.cpu_ratio, 3) for r in rounds]),
        "ceiling_orders_per_second": spread([r.ceiling.orders_per_second for r in rounds]),
        "dispatcher_orders_per_second": spread([r.dispatcher.orders_per_second for r in rounds]),
        "engine_thread_us_per_order": spread(engine_in_c),
        "engine_alone_thread_us_per_order": spread(engine_alone_us),
        "each": [r.summary() for r in rounds],
    }
