"""Background processes of the local stack that outlive the `dispatcher local up` command.

Why its own module: `up` returns to the shell while the emulator, the dispatcher and the
ConfigMap mirror keep running, so `status` and `down` (later, other processes) must find them
again, and `down` must never signal an unrelated process that reused a pid. Each daemon has a
pid file holding its pid and kernel start time, and a log file, both in the stack's state dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dispatcher.local import procs


@dataclass(frozen=True)
class Daemon:
    """A recorded background process that is still the one we started."""

    name: str
    pid: int
    log: Path


def _start_time(pid: int) -> str | None:
    """The kernel's start time of pid (field 22 of /proc/PID/stat); None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] == "Z" else fields[19]


def start(name: str, argv: list[str], *, state: Path, env: dict[str, str]) -> Daemon:
    """Start argv as :func:`procs.start` does; the pid file also records its start time."""
    proc = procs.start(name, argv, state, env)
    (state / "pids" / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    return Daemon(name, proc.pid, proc.log)


def find(state: Path, name: str) -> Daemon | None:
    """The daemon recorded under name, if that very process still runs."""
    try:
        pid_text, started = (state / "pids" / f"{name}.pid").read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if _start_time(pid) != started:
        return None
    return Daemon(name, pid, state / "logs" / f"{name}.log")


def running(state: Path) -> list[Daemon]:
    found = [find(state, p.stem) for p in sorted((state / "pids").glob("*.pid"))]
    return [d for d in found if d is not None]


def stop(state: Path, name: str, *, grace: float = 30.0) -> bool:
    """SIGTERM, then SIGKILL at the deadline. True when a running daemon was stopped."""
    daemon = find(state, name)
    if daemon is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(daemon.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while find(state, name) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(daemon.pid, os.WNOHANG)  # reap it when this process started it
    return True


def wait_for_line(daemon: Daemon, prefix: str, timeout: float) -> str:
    """The first log line that starts with prefix; fails fast when the daemon dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            for line in daemon.log.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
        if _start_time(daemon.pid) is None:
            raise RuntimeError(f"{daemon.name} exited; see {daemon.log}")
        time.sleep(0.05)
    raise TimeoutError(f"{daemon.name}: no {prefix!r} line within {timeout:.0f}s; see {daemon.log}")
