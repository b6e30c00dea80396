"""SHIM: re-exports tests.cluster.paths until the real dispatcher.local.paths lands at merge."""

# shim: replaced by the real module at merge
import os
from pathlib import Path

from tests.cluster.paths import *  # noqa: F403


def local_state_dir() -> Path:
    """The local stack's own state (never the test cluster's); BURST_LOCAL_STATE_DIR overrides."""
    override = os.environ.get("BURST_LOCAL_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("BURST_DISPATCHER_CACHE") or str(Path.home() / ".cache/burst-dispatcher")
    return Path(base) / "local"
