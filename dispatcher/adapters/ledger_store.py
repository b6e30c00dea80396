"""One writer's ledger ConfigMaps: append digests, roll over to a new chunk, delete old ones.

Why objects per writer and chunk: a ConfigMap is rewritten whole on every update (etcd stores
the full object, and every watching replica receives it), so the bytes an append costs grow
with the object. Small chunks (16 KiB, ~1,365 digests by default) bound that cost; one writer
per object means no two replicas ever race for the same object. ``resourceVersion`` on every
update still guards against a second process running under the same identity: a 409 adopts
the server's copy and the append is retried on top of it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.adapters.kube import translate
from dispatcher.adapters.ledger_watch import REQUEST_TIMEOUT, decode, ledger_body
from dispatcher.core import dedupe
from dispatcher.errors import TransientError

NAME_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class _Chunk:
    name: str
    bucket: int
    number: int
    blob: bytes
    version: str


class LedgerObjects:
    """Appends to the objects of one writer; keeps the shared index in step with each write."""

    def __init__(
        self,
        api: k8s.CoreV1Api,
        *,
        namespace: str,
        environment: str,
        identity: str,
        index: dedupe.DigestIndex,
        lock: threading.Lock,
        chunk_bytes: int,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._environment = environment
        self._identity = identity
        self._index = index
        self._lock = lock
        self._per_chunk = chunk_bytes // dedupe.DIGEST_BYTES
        self._current: _Chunk | None = None
        self.calls: Counter[str] = Counter()
        self.request_bytes = 0

    def append(self, batch: list[bytes], *, bucket: int) -> None:
        """Store ``batch`` under ``bucket``: one update, plus a create per chunk bound crossed.

        Safe to call again after a failure: digests the index already holds are skipped.
        """
        with self._lock:
            todo = [value for value in batch if value not in self._index]
        while todo:
            current = self._current if self._current and self._current.bucket == bucket else None
            room = self._per_chunk - len(current.blob) // dedupe.DIGEST_BYTES if current else 0
            if current is not None and room > 0:
                piece, todo = todo[:room], todo[room:]
                self._update(current, piece)
            else:
                piece, todo = todo[: self._per_chunk], todo[self._per_chunk :]
                self._create(bucket, piece)

    def delete(self, name: str) -> None:
        self._count("delete", None)
        try:
            self._api.delete_namespaced_config_map(
                name, self._namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc) from exc
        with self._lock:
            self._index.drop(name)
            if self._current is not None and self._current.name == name:
                self._current = None

    def _create(self, bucket: int, piece: list[bytes]) -> None:
        blob = dedupe.pack(piece)
        number = self._next_number(bucket)
        for _ in range(NAME_ATTEMPTS):
            name = dedupe.object_name(
                environment=self._environment, identity=self._identity, bucket=bucket, chunk=number
            )
            body = ledger_body(
                name=name,
                environment=self._environment,
                identity=self._identity,
                bucket=bucket,
                blob=blob,
            )
            self._count("create", body)
            try:
                made = self._api.create_namespaced_config_map(
                    self._namespace, body, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as exc:
                if exc.status == 409:  # an earlier process with this identity used the name
                    number += 1
                    continue
                raise translate(exc) from exc
            self._adopt(_Chunk(name, bucket, number, blob, str(made.metadata.resource_version)))
            return
        raise TransientError(f"no free ledger object name after {NAME_ATTEMPTS} attempts")

    def _update(self, current: _Chunk, piece: list[bytes]) -> None:
        blob = current.blob + dedupe.pack(piece)
        body = ledger_body(
            name=current.name,
            environment=self._environment,
            identity=self._identity,
            bucket=current.bucket,
            blob=blob,
            version=current.version,
        )
        self._count("update", body)
        try:
            done = self._api.replace_namespaced_config_map(
                current.name, self._namespace, body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 409:
                self._reread(current)
                raise TransientError(f"ledger object {current.name} changed; retrying") from exc
            if exc.status == 404:
                with self._lock:
                    self._current = None
                raise TransientError(f"ledger object {current.name} vanished; retrying") from exc
            raise translate(exc) from exc
        version = str(done.metadata.resource_version)
        self._adopt(_Chunk(current.name, current.bucket, current.number, blob, version))

    def _reread(self, current: _Chunk) -> None:
        self._count("get", None)
        try:
            found = self._api.read_namespaced_config_map(
                current.name, self._namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            raise translate(exc) from exc
        decoded = decode(found)
        if decoded is None:
            with self._lock:
                self._current = None
            return
        _, bucket, blob = decoded
        version = str(found.metadata.resource_version)
        self._adopt(_Chunk(current.name, bucket, current.number, blob, version))

    def _adopt(self, chunk: _Chunk) -> None:
        with self._lock:
            self._current = chunk
            self._index.put(chunk.name, bucket=chunk.bucket, blob=chunk.blob)

    def _next_number(self, bucket: int) -> int:
        prefix = dedupe.object_name(
            environment=self._environment, identity=self._identity, bucket=bucket, chunk=0
        )[:-4]
        with self._lock:
            taken = [int(name[len(prefix) :]) for name in self._index.names() if _own(name, prefix)]
        if self._current is not None and self._current.bucket == bucket:
            taken.append(self._current.number)
        return max(taken, default=-1) + 1

    def _count(self, verb: str, body: dict[str, Any] | None) -> None:
        self.calls[verb] += 1
        if body is not None:
            self.request_bytes += len(json.dumps(body, separators=(",", ":")))


def _own(name: str, prefix: str) -> bool:
    return name.startswith(prefix) and name[len(prefix) :].isdigit()
