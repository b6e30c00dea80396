"""The one way a test waits for something: poll a condition until it holds or a deadline passes.

The standards forbid sleeping for a fixed time to wait for a server; every wait in the tests is
this poll with a deadline, and its failure names what did not happen.
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
