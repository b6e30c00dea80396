"""How the benchmark measures: the fast emulator, CPU from /proc, RSS, waiting, percentiles.

Nothing here knows about the dispatcher; every phase reads its figures through these helpers,
so the phases are measured the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the fast emulator (dispatcher.local.pubsub.start_server, keeping the pid) ------------------
@dataclass(frozen=True)
class Emulator:
    host: str
    pid: int


@contextlib.contextmanager
def fast_emulator() -> Iterator[Emulator]:
    """Start the built ``fastsub`` server on a free loopback port."""
    from dispatcher.local import pubsub as binaries

    path = binaries.binary("fast")
    if path is None:
        raise SystemExit(
            f"the fast Pub/Sub emulator is not built (expected in {binaries.build_dir()}): "
            "run servers/pubsub/build.sh"
        )
    from dispatcher.local.pubsub import start_server

    with (
        tempfile.TemporaryDirectory(prefix="bench-pubsub-") as tmp,
        start_server(path, Path(tmp)) as server,
    ):
        yield Emulator(server.host, server.pid)


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, niced, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, values[1], sum(values)


def rss_bytes() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes, from /proc/self/status."""
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


@dataclass
class Cpu:
    """CPU used during a phase, in cores (1.0 = one core busy for the whole phase)."""

    bench: float
    emulator: float
    machine: float  # everything on the machine, this benchmark included
    niced: float  # the part of ``machine`` run at a lower priority (other people's builds)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by thread name (pool numbers dropped)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        name = names.get(int(task.name), f"{comm} (native)")
        name = re.sub(r"^Thread-\d+ \((\w+)\)$", r"\1", name)
        name = re.sub(r"[_-]\d+$", "", name)
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


class CpuMeter:
    def __init__(self, emulator_pid: int) -> None:
        self._pid = emulator_pid
        self._threads = thread_cpu_seconds()
        self.started = time.perf_counter()
        self._self = proc_cpu_seconds()
        self._emu = proc_cpu_seconds(emulator_pid)
        self._busy, self._niced, self._total = machine_jiffies()

    def read(self) -> Cpu:
        wall = max(1e-9, time.perf_counter() - self.started)
        busy, niced, total = machine_jiffies()
        scale = (os.cpu_count() or 1) / max(1, total - self._total)
        return Cpu(
            bench=round((proc_cpu_seconds() - self._self) / wall, 2),
            emulator=round((proc_cpu_seconds(self._pid) - self._emu) / wall, 2),
            machine=round((busy - self._busy) * scale, 2),
            niced=round((niced - self._niced) * scale, 2),
        )

    def threads_per_order(self, orders: int) -> dict[str, float]:
        """Microseconds of CPU per order by thread name, largest first (>= 0.5 µs)."""
        before = self._threads
        spent = {
            name: (cpu - before.get(name, 0.0)) / orders * 1e6
            for name, cpu in thread_cpu_seconds().items()
        }
        ranked = sorted(spent.items(), key=lambda kv: -kv[1])
        return {name: round(us, 1) for name, us in ranked if us >= 0.5}


def wait_for(done: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout_s:.0f} s")
        time.sleep(0.005)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]
