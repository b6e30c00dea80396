"""Starting, watching and stopping the cluster's processes.

Why: the processes must outlive the command that started them (own session, pid files in the
state dir), `down` must never kill an unrelated process that reused a pid (the command line must
name the state dir), and every wait is a poll against a deadline that fails fast, with the log's
tail, when the process it waits for has died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class Fatal(RuntimeError):
    """Raised by a wait_for probe when waiting longer cannot help."""


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now; all held open together so they are distinct."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def log_tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Proc:
    """One started process: its pid file and log in the state dir."""

    name: str
    pid: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def start(
    name: str,
    argv: list[str],
    state: Path,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start argv detached (new session), logging to state/logs/NAME.log, pid in state/pids."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    log = state / "logs" / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=state,
        )
    (state / "pids" / f"{name}.pid").write_text(f"{popen.pid}\n")
    return Proc(name=name, pid=popen.pid, log=log, popen=popen)


def recorded(state: Path) -> list[Proc]:
    """Processes recorded in the state dir whose command line still names the state dir."""
    procs: list[Proc] = []
    pids = state / "pids"
    if not pids.is_dir():
        return procs
    marker = str(state)
    for pid_file in sorted(pids.glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        name = pid_file.stem
        if pid_alive(pid) and marker in cmdline(pid):
            procs.append(Proc(name=name, pid=pid, log=state / "logs" / f"{name}.log"))
    return procs


def stop(procs: list[Proc], timeout: float = 15.0) -> None:
    """SIGTERM all, then SIGKILL whatever is still alive at the deadline; reap our children."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.alive() for p in procs):
        time.sleep(0.05)
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    proc: Proc | None = None,
    interval: float = 0.1,
) -> None:
    """Poll check() until it is true; raise with context at the deadline or if proc dies."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            if check():
                return
        except Fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - any other probe failure means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited while waiting for {what}; log {proc.log}:\n"
                f"{log_tail(proc.log)}"
            )
        if time.monotonic() >= deadline:
            tail = f"\nlog {proc.log}:\n{log_tail(proc.log)}" if proc is not None else ""
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what} {last_error}{tail}"
            )
        time.sleep(interval)


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when GET url answers 200 (http and https only: the URLs are the components')."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def insecure_tls() -> ssl.SSLContext:
    """For the self-signed /healthz endpoints of scheduler and controller-manager."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0
