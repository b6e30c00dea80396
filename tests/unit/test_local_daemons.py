"""The local stack's background processes: found again by a later command, never confused with
a process that reused the pid, stopped for good; and the swarm's display in plain lines."""

from __future__ import annotations

import io
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console

from dispatcher.local import daemons, progress
from dispatcher.local.procs import pid_alive
from dispatcher.local.swarm import ClassRow, Snapshot


def test_a_daemon_is_found_again_and_stopped(tmp_path: Path) -> None:
    started = daemons.start(
        "sleeper",
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        state=tmp_path,
        env={},
    )
    assert daemons.wait_for_line(started, "ready", timeout=30) == "ready"
    assert daemons.find(tmp_path, "sleeper") == started
    assert daemons.running(tmp_path) == [started]
    assert daemons.stop(tmp_path, "sleeper", grace=10)
    assert not pid_alive(started.pid)
    assert daemons.find(tmp_path, "sleeper") is None
    assert not daemons.stop(tmp_path, "sleeper")


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    # This test process is alive, but it did not start at the recorded time.
    (tmp_path / "pids" / "other.pid").write_text(f"{Path('/proc/self').resolve().name} 1\n")
    assert daemons.find(tmp_path, "other") is None
    assert not daemons.stop(tmp_path, "other")


def _snapshot(*, done: bool) -> Snapshot:
    small = ClassRow(orders=57, workflows=Counter({"succeeded": 2, "live": 0 if done else 1}))
    return Snapshot(
        elapsed=12.5, published=60, dead_lettered=3, held=0, classes={"small": small},
        pools={"small-spot": (2, 0 if done else 1)}, done=done,
    )  # fmt: skip


def test_progress_prints_a_line_per_change_and_a_summary() -> None:
    samples = iter([_snapshot(done=False), _snapshot(done=False), _snapshot(done=True)])
    console = Console(record=True, width=200, file=io.StringIO())
    final = progress.follow(lambda: next(samples), timeout=30, console=console, interval=0)
    assert final.done
    lines = console.export_text().splitlines()
    assert len(lines) == 2, lines  # the repeated state printed once
    assert "small 57 orders/1 live/2 ok/0 failed" in lines[0]
    assert "pods small-spot=1" in lines[0]
    console.print(progress.summary(final))
    summary = console.export_text()
    assert "60 published, 3 dead-lettered" in summary
    assert any(line.split() == ["│", "all", "│", "57", "│", "2", "│", "2", "│", "0", "│"]
               for line in summary.splitlines()), summary  # fmt: skip
