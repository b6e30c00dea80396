"""The local Pub/Sub servers: where their binaries are once built, and how to run one.

Why here: the local stack and the tests start the same Go servers (`pstest_server`, Google's fake,
and `fastsub`, the batched load-grade one) the same way. Both must agree on the cache directory
without anyone but `servers/pubsub/build.sh` running a Go build, so the directory name is a hash
of everything that goes into the binaries (Go sources, go.mod, go.sum, build.sh, by path relative
to servers/pubsub). A stale binary is therefore never picked up: edit a source and the lookup
goes to a new directory until build.sh has been run again.

Stdlib only at import time, so build.sh can ask for the directory with any ``python3``
(``python3 servers/pubsub/binaries.py dir``); grpc is imported only to probe a running server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dispatcher.local.paths import SERVERS_DIR, cache_base

HERE = SERVERS_DIR / "pubsub"
PROJECT = "test-project"
STARTUP_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"^listening (\S+:\d+)\s*$")

#: Emulator kind (as the tests and the local stack name it) -> server directory under
#: servers/pubsub, which is also the binary's file name.
SERVERS: dict[str, str] = {"pstest": "pstest_server", "fast": "fastsub"}


def cache_root() -> Path:
    """Return the project cache root (same default as build.sh)."""
    return cache_base()


def server_dirs() -> list[Path]:
    """Return every Go server directory (a directory with a go.mod) under servers/pubsub."""
    return sorted(p.parent for p in HERE.glob("*/go.mod"))


def _hashed_files() -> list[Path]:
    files = [HERE / "build.sh"]
    for d in server_dirs():
        for p in sorted(d.rglob("*")):
            if not p.is_file() or "testdata" in p.relative_to(d).parts:
                continue
            if p.name in ("go.mod", "go.sum") or (
                p.suffix == ".go" and not p.name.endswith("_test.go")
            ):
                files.append(p)
    return files


def source_hash() -> str:
    """Return a short hash of every input of the Go build."""
    h = hashlib.sha256()
    for p in _hashed_files():
        h.update(p.relative_to(HERE).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build_dir() -> Path:
    """Return the directory build.sh writes the binaries for the current sources into."""
    return cache_root() / "pubsub" / source_hash()


def binary(kind: str) -> Path | None:
    """Return the built binary for an emulator kind ("pstest" or "fast"), or None if not built."""
    name = SERVERS.get(kind)
    if name is None:
        return None
    path = build_dir() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def wait_until_serving(host: str, timeout_s: float) -> None:
    """Block until a gRPC server at ``host`` answers a Pub/Sub call, or raise TimeoutError."""
    import grpc
    from google.pubsub_v1.types import ListTopicsRequest

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        with grpc.insecure_channel(host) as channel:
            try:
                grpc.channel_ready_future(channel).result(
                    timeout=max(0.1, deadline - time.monotonic())
                )
                list_topics = channel.unary_unary(
                    "/google.pubsub.v1.Publisher/ListTopics",
                    request_serializer=ListTopicsRequest.serialize,
                    response_deserializer=lambda b: b,
                )
                list_topics(ListTopicsRequest(project=f"projects/{PROJECT}"), timeout=2.0)
            except (grpc.FutureTimeoutError, grpc.RpcError) as exc:
                last = exc
            else:
                return
        time.sleep(0.05)
    raise TimeoutError(f"Pub/Sub server at {host} not serving after {timeout_s}s: {last!r}")


def _read_first_line(stream: IO[bytes], proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """Read the server's first stdout line without blocking past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no 'listening' line within {timeout_s}s")
            if not sel.select(timeout=min(remaining, 0.2)):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with code {proc.returncode}")
                continue
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"server closed stdout (exit code {proc.poll()})")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


@dataclass(frozen=True)
class RunningServer:
    """A started server: its address and pid."""

    host: str
    pid: int


@contextlib.contextmanager
def start_server(path: Path, log_dir: Path) -> Iterator[RunningServer]:
    """Run a Go test server on a free loopback port until the block ends."""
    log_path = log_dir / f"{path.name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(path), "-addr", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            if proc.stdout is None:
                raise RuntimeError("no stdout pipe")
            line = _read_first_line(proc.stdout, proc, STARTUP_TIMEOUT_S)
            match = _LISTENING.match(line)
            if match is None:
                raise RuntimeError(f"unexpected first line from {path.name}: {line!r}")
            host = match.group(1)
            wait_until_serving(host, STARTUP_TIMEOUT_S)
            yield RunningServer(host, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


@contextlib.contextmanager
def run_binary(path: Path, log_dir: Path) -> Iterator[str]:
    """Run a Go test server on a free loopback port; yield its ``host:port``."""
    with start_server(path, log_dir) as server:
        yield server.host


def main(argv: list[str]) -> int:
    """Tiny CLI for build.sh: ``hash`` or ``dir``."""
    if argv == ["hash"]:
        print(source_hash())
        return 0
    if argv == ["dir"]:
        print(build_dir())
        return 0
    print("usage: binaries.py hash|dir", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
