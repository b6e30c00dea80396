"""Running `dispatcher run` as a real child process: start, read its JSON logs, stop.

Why: the local stack and the tests run the service the way it ships, as its own process with
JSON logs, and judge it by what it logs; one class starts it, collects every log line as it
comes (kept in a file too) and stops it with SIGTERM the way Kubernetes does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class DispatcherProcess:
    """A `dispatcher run` child process whose JSON log lines are collected as they come."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        full_env = {**os.environ, **env, "DISPATCHER_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.proc.stderr
        if stream is None:
            return
        with self.log_path.open("ab") as log:
            for raw in stream:
                log.write(raw)
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                with self._lock:
                    self.events.append(event)

    def wait_for(self, message: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    if event.get("message") == message:
                        return event
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"dispatcher exited ({self.proc.returncode}); see {self.log_path}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"no {message!r} log line within {timeout}s; see {self.log_path}")

    def snapshot(self) -> list[dict[str, Any]]:
        """Every JSON log line so far."""
        with self._lock:
            return list(self.events)

    def logged(self, message: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("message") == message]

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._reader.join(timeout=5)
