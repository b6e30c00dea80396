"""``settle_heap``: a dispatcher process hides its start-up heap from the cycle collector.

Run in a child process: freezing the test runner's own heap would leak every later test's
cyclic garbage into the permanent generation.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json
from dispatcher.service.assembly import GC_YOUNG_THRESHOLD, settle_heap
before = gc.get_threshold()
settle_heap()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "young": GC_YOUNG_THRESHOLD}))
"""


def test_settle_heap_freezes_the_start_up_heap_and_raises_only_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["frozen"] > 10_000  # the imported modules, at the least
    assert seen["after"] == [seen["young"], *seen["before"][1:]]
    assert seen["young"] > seen["before"][0]
