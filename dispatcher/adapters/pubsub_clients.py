"""Pub/Sub clients that see the same message-size limits against an emulator as in production.

Why this exists: with ``PUBSUB_EMULATOR_HOST`` set, ``google-cloud-pubsub`` opens a plain
``grpc.insecure_channel(host)``, which keeps gRPC's default 4 MiB receive limit. The channel
it opens for production passes ``grpc.max_receive_message_length=-1`` (no limit), so a message
near Pub/Sub's 10 MB limit arrives in production but never in a test: the streaming pull fails
with RESOURCE_EXHAUSTED, reopens, fails again, forever. Every client the dispatcher (and its
tests) builds comes from here, so emulator runs use production's limits.

Keepalive pings are left out on purpose: the production channel pings every 30 s, and a Go
gRPC server with default enforcement (the emulators) answers that with GOAWAY.
"""

from __future__ import annotations

import os
from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"

#: The message-size options of the production channel (google.pubsub_v1 transports).
UNLIMITED_MESSAGES: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_metadata_size", 4 * 1024 * 1024),
)


def emulator_host() -> str | None:
    """The emulator's ``host:port`` when one is configured, else None (production)."""
    return os.environ.get(EMULATOR_ENV) or None


def emulator_channel(host: str) -> grpc.Channel:
    """An insecure channel to ``host`` with production's message-size limits."""
    return grpc.insecure_channel(host, options=list(UNLIMITED_MESSAGES))


def publisher_client(**kwargs: Any) -> pubsub_v1.PublisherClient:
    """A ``PublisherClient``; against an emulator, over a channel with production's limits.

    ``kwargs`` go to ``PublisherClient`` unchanged (``batch_settings``, ``publisher_options``).
    """
    host = emulator_host()
    if host is not None and "transport" not in kwargs:
        kwargs["transport"] = PublisherGrpcTransport(channel=emulator_channel(host), host=host)
    return pubsub_v1.PublisherClient(**kwargs)


def subscriber_client(**kwargs: Any) -> pubsub_v1.SubscriberClient:
    """A ``SubscriberClient``; against an emulator, over a channel with production's limits."""
    host = emulator_host()
    if host is not None and "transport" not in kwargs:
        kwargs["transport"] = SubscriberGrpcTransport(channel=emulator_channel(host), host=host)
    return pubsub_v1.SubscriberClient(**kwargs)
