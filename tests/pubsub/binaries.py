"""Where the Go Pub/Sub test servers live once built, shared by build.sh and the pytest plugin.

Both sides must agree on the cache directory without pytest ever running a Go build, so the
directory name is a hash of everything that goes into the binaries (Go sources, go.mod, go.sum,
build.sh). A stale binary is therefore never picked up: edit a source and the plugin looks in a
new directory until ``tests/pubsub/build.sh`` has been run again.

Stdlib only, so build.sh can run it with any ``python3``:
``python3 tests/pubsub/binaries.py dir`` prints the directory for the current sources.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Emulator kind (as used by the pytest fixture) -> server directory under tests/pubsub,
#: which is also the binary's file name.
SERVERS: dict[str, str] = {"pstest": "pstest_server", "fast": "fastsub"}


def cache_root() -> Path:
    """Return the project cache root (same default as build.sh)."""
    env = os.environ.get("BURST_DISPATCHER_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "burst-dispatcher"


def server_dirs() -> list[Path]:
    """Return every Go server directory (a directory with a go.mod) under tests/pubsub."""
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
