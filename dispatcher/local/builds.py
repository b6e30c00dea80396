"""Building the Go servers the local stack runs, when they are not in the cache yet.

Why: a fresh clone has no binaries, and the README's local run must work there. The build
scripts own the cache keys and the pinned versions, so this module only runs them, shows their
progress, and says up front how long a cold build takes. Their paths live in `build_scripts`
and nowhere else.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from dispatcher.local import autoscaler, paths, pubsub

REPO = Path(__file__).resolve().parents[2]

#: What a cold build costs on a 2-core machine (docs/local.md), shown before it starts.
COLD_BUILD = {"cluster": "about 16 min", "pubsub": "about 2 min", "autoscaler": "about 8 min"}


def build_scripts() -> dict[str, Path]:
    """The build script of each server set (the one place that knows where they are)."""
    return {
        "cluster": REPO / "servers" / "cluster" / "build.sh",
        "pubsub": REPO / "servers" / "pubsub" / "build.sh",
        "autoscaler": autoscaler.BUILD_SCRIPT,
    }


def _built(kind: str) -> bool:
    if kind == "pubsub":
        return pubsub.binary("fast") is not None
    try:
        autoscaler.bin_dir() if kind == "autoscaler" else paths.bin_dir()
    except paths.NotBuiltError:
        return False
    return True


def ensure_built(say: Callable[[str], None], *, autoscaling: bool = False) -> None:
    """Run each server set's build script when its binaries are missing, echoing its progress
    (the autoscaler's only when it is asked for)."""
    for kind, script in build_scripts().items():
        if _built(kind) or (kind == "autoscaler" and not autoscaling):
            continue
        say(f"building the {kind} servers from the Go module proxy ({COLD_BUILD[kind]} cold)")
        with subprocess.Popen(
            ["bash", str(script)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            if proc.stderr is None:
                raise RuntimeError("no stderr pipe")
            tail: list[str] = []
            for line in proc.stderr:
                tail = [*tail[-20:], line.rstrip()]
                say(f"  {line.rstrip()}")
        if proc.returncode != 0 or not _built(kind):
            detail = "\n".join(tail)
            raise RuntimeError(f"{script} exited {proc.returncode}:\n{detail}")
