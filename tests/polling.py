"""The one way a test waits for something: poll a condition until it holds or a deadline passes.

The standards forbid sleeping for a fixed time to wait for a server. Most test waits use this
poll with a deadline, and its failure names what did not happen. Not yet: tests/cluster's
fetch/done ``poll``, the rehearsal's use of ``dispatcher.local.overlay.poll`` and the inline
deadline loops of test_local_stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    condition: Callable[[], T], timeout: float = 20.0, what: str = "", *, interval: float = 0.05
) -> T:
    """Call ``condition()`` until it returns something truthy and return that; fail after
    ``timeout`` seconds with an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(interval)
