"""Realistic swarms for trying the dispatcher: heavy-tailed input sizes, a few bad apples.

Most orders are small (a log-normal body around a few MiB), some are medium and a thin Pareto
tail is large, which is what makes per-class batching and limits matter.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator

MEDIAN_BYTES = 4 * 1024 * 1024
SIGMA = 2.2
TAIL_SHARE = 0.01
TAIL_MIN_BYTES = 8 * 1024**3
TAIL_ALPHA = 1.5
MAX_BYTES = 2**63 - 1


def input_size(rng: random.Random) -> int:
    if rng.random() < TAIL_SHARE:
        size = TAIL_MIN_BYTES * rng.paretovariate(TAIL_ALPHA)
    else:
        size = rng.lognormvariate(math.log(MEDIAN_BYTES), SIGMA)
    return min(int(size), MAX_BYTES)


def example_orders(
    count: int, *, seed: int = 7, invalid_share: float = 0.0, duplicate_share: float = 0.0
) -> Iterator[str]:
    """``count`` JSON lines; some invalid or repeated when asked (for trying dead-lettering)."""
    for line, _size in sized_example_orders(
        count, seed=seed, invalid_share=invalid_share, duplicate_share=duplicate_share
    ):
        yield line


def sized_example_orders(
    count: int, *, seed: int = 7, invalid_share: float = 0.0, duplicate_share: float = 0.0
) -> Iterator[tuple[str, int]]:
    """As :func:`example_orders`, each line with its input size (0 for an invalid line), so a
    simulation need not parse the line again to know how long its order runs."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data
    emitted: list[tuple[str, int]] = []
    for index in range(count):
        roll = rng.random()
        if emitted and roll < duplicate_share:
            yield rng.choice(emitted)
            continue
        if roll < duplicate_share + invalid_share:
            yield _invalid(rng, index), 0
            continue
        size = input_size(rng)
        priority = rng.choice((0, 0, 0, 1, 5))
        enrich = "true" if rng.random() < 0.2 else "false"
        customer = rng.randrange(500)
        # json.dumps of the same dict, compact, keys in this order; by hand because a
        # million-order simulation generates its swarm on the fly (the ids and URIs are
        # plain ASCII, nothing needs escaping).
        line = (
            f'{{"order_id":"ord-{seed}-{index:07d}","input":{{"uri":"gs://orders-input/{seed}/'
            f'{index:07d}.bin","size_bytes":{size}}},"priority":{priority},"steps":{{"enrich":'
            f'{enrich}}},"params":{{"customer":"c-{customer:03d}"}}}}'
        )
        if len(emitted) < 10_000:
            emitted.append((line, size))
        yield line, size


def _invalid(rng: random.Random, index: int) -> str:
    kinds = (
        "{not json",
        json.dumps([index]),
        json.dumps({"order_id": "", "input": {"uri": "gs://x", "size_bytes": 1}}),
        json.dumps({"order_id": f"bad-{index}", "input": {"uri": "gs://x", "size_bytes": -5}}),
        json.dumps({"order_id": f"bad-{index}", "input": {"uri": "gs://x", "size_bytes": True}}),
        json.dumps({"order_id": f"bad-{index}", "input": {"uri": "", "size_bytes": 10}}),
    )
    return rng.choice(kinds)
