"""A fault-injecting gRPC proxy in front of a real Pub/Sub emulator.

Clients point ``PUBSUB_EMULATOR_HOST`` at the proxy; every call is forwarded to the emulator
as raw bytes (no message is re-encoded), so the emulator does all the real work. Faults apply
to ``Publish`` calls to one topic only, so a test can break the way out while the way in
(pulls, acks of the source) stays intact:

- ``hold``: the publish is never forwarded and never answered until the client gives up or
  the proxy closes (a network that swallows requests);
- ``lose_response``: the publish is forwarded and stored by the emulator, then the client is
  told UNAVAILABLE (the ambiguous publish: it landed, but the sender saw an error).

The proxy also records every ``Acknowledge`` per subscription, which is what "nothing is acked
before its copy is stored" is judged by.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.pubsub_v1.types import AcknowledgeRequest, PublishRequest

PUBLISH = "/google.pubsub.v1.Publisher/Publish"
ACKNOWLEDGE = "/google.pubsub.v1.Subscriber/Acknowledge"
STREAMING = {"/google.pubsub.v1.Subscriber/StreamingPull"}
_MAX_MESSAGE = 64 * 1024 * 1024


def _raw(data: bytes) -> bytes:
    return data


@dataclass
class Faults:
    """What to do to publishes to ``topic`` (full path); ``mode`` may change while running."""

    topic: str = ""
    mode: str = "forward"  # forward | hold | lose_response
    limit: int | None = None  # fault at most this many publishes, then forward
    publishes: Counter[str] = field(default_factory=Counter)  # per mode applied
    acked: Counter[str] = field(default_factory=Counter)  # ack ids per subscription
    released: threading.Event = field(default_factory=threading.Event)


class _Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, upstream: grpc.Channel, faults: Faults) -> None:
        self._upstream = upstream
        self._faults = faults
        self._lock = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        if method in STREAMING:
            forward_stream = self._upstream.stream_stream(
                method, request_serializer=_raw, response_deserializer=_raw
            )

            def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                call = forward_stream(requests, metadata=context.invocation_metadata())
                context.add_callback(call.cancel)
                yield from call

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=_raw, response_serializer=_raw
            )
        forward = self._upstream.unary_unary(
            method, request_serializer=_raw, response_deserializer=_raw
        )

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            self._observe(method, request)
            fault = self._fault(method, request)
            if fault == "hold":
                while context.is_active() and not self._faults.released.wait(0.1):
                    pass
                context.abort(grpc.StatusCode.UNAVAILABLE, "held by the fault proxy")
            try:
                answer: bytes = forward(request, metadata=context.invocation_metadata(), timeout=60)
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details() or "")
            if fault == "lose_response":
                context.abort(grpc.StatusCode.UNAVAILABLE, "response lost by the fault proxy")
            return answer

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=_raw, response_serializer=_raw
        )

    def _fault(self, method: str, request: bytes) -> str:
        faults = self._faults
        if method != PUBLISH or faults.mode == "forward":
            return "forward"
        if PublishRequest.deserialize(request).topic != faults.topic:
            return "forward"
        with self._lock:
            if faults.limit is not None and sum(faults.publishes.values()) >= faults.limit:
                return "forward"
            faults.publishes[faults.mode] += 1
            return faults.mode

    def _observe(self, method: str, request: bytes) -> None:
        if method == ACKNOWLEDGE:
            ack = AcknowledgeRequest.deserialize(request)
            with self._lock:
                self._faults.acked[ack.subscription] += len(ack.ack_ids)


class PubSubFaultProxy:
    """Listen on a free loopback port; forward to ``upstream`` (host:port) with ``faults``."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        self.faults = faults
        self._channel = grpc.insecure_channel(upstream, options=options)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=options)
        self._server.add_generic_rpc_handlers((_Handler(self._channel, faults),))
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.host = f"127.0.0.1:{port}"

    def __enter__(self) -> PubSubFaultProxy:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.faults.released.set()
        self._server.stop(grace=1).wait()
        self._channel.close()
