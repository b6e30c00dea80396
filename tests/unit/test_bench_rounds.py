"""The benchmark's round summary: the reported round is the median one, the spread is honest.

The (c)/(a) figure in docs/performance.md and in CI comes from this summary, so a slip here
(reporting the best round, or mixing (a) of one round with (c) of another) would flatter it.
"""

from __future__ import annotations

import pytest

from bench.measure import Cpu
from bench.results import PhaseResult
from bench.rounds import Round, median_round, rounds_report, spread


def phase(name: str, per_second: float, cpu_us: float) -> PhaseResult:
    cpu = Cpu(bench=0.9, emulator=0.1, machine=1.2, niced=0.0)
    threads = {"engine": 20.0} if name == "dispatcher" else {}
    return PhaseResult(name, 1000, 1000 / per_second, per_second, cpu, cpu_us, threads)


def a_round(ceiling: float, dispatcher: float, *, cpu: tuple[float, float] = (30, 50)) -> Round:
    engine = {"engine_thread_us_per_order": 18.0}
    return Round(phase("ceiling", ceiling, cpu[0]), phase("dispatcher", dispatcher, cpu[1]), engine)


def test_the_median_round_is_reported_not_the_best() -> None:
    rounds = [a_round(20_000, 16_000), a_round(20_000, 8_000), a_round(20_000, 12_000)]
    assert median_round(rounds) is rounds[2]
    report = rounds_report(rounds)
    assert report["ratio"] == {"median": 0.6, "min": 0.4, "max": 0.8}
    assert report["rounds"] == 3


def test_each_ratio_pairs_a_and_c_of_the_same_round() -> None:
    rounds = [a_round(10_000, 9_000), a_round(30_000, 15_000)]
    assert [each["ratio"] for each in rounds_report(rounds)["each"]] == [0.9, 0.5]
    # the lower middle of an even count: never the flattering one
    assert median_round(rounds) is rounds[1]


def test_the_cpu_ratio_is_a_over_c_cpu_per_order() -> None:
    assert a_round(20_000, 10_000, cpu=(30, 40)).cpu_ratio == pytest.approx(0.75)


def test_spread_refuses_nothing_to_summarise() -> None:
    with pytest.raises(ValueError):
        spread([])
    with pytest.raises(ValueError):
        median_round([])
