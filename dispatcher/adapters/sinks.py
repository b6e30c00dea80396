"""Where Workflow bodies go: the protocol, an in-memory twin and a directory writer.

The Kubernetes adapter is the real sink; the in-memory twin behaves like it for unit tests
(409 on a repeated name), and the directory sink lets ``dispatcher run --sink DIR`` work
without a cluster.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import yaml


class CreateResult(StrEnum):
    CREATED = "created"
    EXISTS = "exists"


class WorkflowSink(Protocol):
    def create(self, body: dict[str, Any]) -> CreateResult:
        """Create the Workflow; raise TransientError or PermanentError when it cannot."""
        ...


class MemorySink:
    """Keeps created bodies by name; a repeated name answers EXISTS like a 409."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.attempts = 0

    def create(self, body: dict[str, Any]) -> CreateResult:
        name = body["metadata"]["name"]
        with self._lock:
            self.attempts += 1
            if name in self.bodies:
                return CreateResult.EXISTS
            self.bodies[name] = body
            return CreateResult.CREATED


class DirectorySink:
    """Writes each body as ``<name>.yaml``; an existing file answers EXISTS."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def create(self, body: dict[str, Any]) -> CreateResult:
        path = self._directory / f"{body['metadata']['name']}.yaml"
        try:
            with path.open("x", encoding="utf-8") as handle:
                yaml.safe_dump(body, handle, sort_keys=False, allow_unicode=True)
        except FileExistsError:
            return CreateResult.EXISTS
        return CreateResult.CREATED
