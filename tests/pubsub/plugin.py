"""Pytest plugin: a real Pub/Sub server for tests, reached through PUBSUB_EMULATOR_HOST.

Why: the dispatcher's Pub/Sub behaviour (flow control, ack only after the Workflow exists,
dead-lettering, redelivery) can only be trusted when tested against a server that implements
Pub/Sub's semantics, driven by the real ``google-cloud-pubsub`` client. The servers, in order:

1. ``PUBSUB_EMULATOR_HOST`` already set: use that server (kind ``external``).
2. Go binaries built by ``servers/pubsub/build.sh`` (looked up, never built, here; started by
   ``dispatcher.local.pubsub``, as the local stack starts them):
   ``pstest`` (Google's fake, the semantic reference) and ``fast`` (our batched, load-grade
   server). When both are built, the ``pubsub_emulator`` fixture is parametrized over both, so
   every test runs against each and the fast server is held to pstest's semantics.
3. A working Docker engine: the official emulator image through testcontainers (kind ``docker``).
4. Nothing: skip locally; fail under ``CI=true`` (CI must build the binaries first).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatcher.local import pubsub as binaries
from dispatcher.local.pubsub import PROJECT, run_binary, wait_until_serving

DOCKER_IMAGE = "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
_BUILD_HINT = "run servers/pubsub/build.sh first"


@dataclass(frozen=True)
class PubSubEmulator:
    """A running Pub/Sub server the tests may use."""

    host: str
    project: str
    kind: str  # "pstest" | "fast" | "external" | "docker"


@dataclass
class PubSubClients:
    """Publisher and subscriber clients bound to the emulator."""

    publisher: Any  # google.cloud.pubsub_v1.PublisherClient
    subscriber: Any  # google.cloud.pubsub_v1.SubscriberClient
    project: str


@dataclass
class TopicSubscription:
    """Names created by ``make_topic_subscription`` (full resource paths)."""

    topic: str
    subscription: str
    dead_letter_topic: str | None = None
    dead_letter_subscription: str | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"Pub/Sub emulator unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Pub/Sub emulator unavailable: {reason}")


def emulator_kinds() -> list[str]:
    """Return the emulator kinds the ``pubsub_emulator`` fixture is parametrized over."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return ["external"]
    if _in_ci():
        return list(binaries.SERVERS)  # all must be built; a missing one fails loudly
    built = [kind for kind in binaries.SERVERS if binaries.binary(kind) is not None]
    return built or ["docker"]


def _docker_works() -> bool:
    try:
        docker: Any = importlib.import_module("docker")
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure here means "no usable Docker engine"
        return False


@contextlib.contextmanager
def run_docker() -> Iterator[str]:
    """Run the official emulator image through testcontainers; yield its ``host:port``."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(DOCKER_IMAGE)
        .with_command(
            f"gcloud beta emulators pubsub start --project={PROJECT} --host-port=0.0.0.0:8085"
        )
        .with_exposed_ports(8085)
        .waiting_for(LogMessageWaitStrategy(re.compile(r"Server started, listening on")))
    )
    with container:
        host = f"{container.get_container_host_ip()}:{container.get_exposed_port(8085)}"
        wait_until_serving(host, 60.0)
        yield host


LARGE_MESSAGES = "large_messages"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{LARGE_MESSAGES}: needs messages up to Pub/Sub's 10 MB; not run against pstest, whose "
        "gRPC server keeps the 4 MiB receive limit (pstest takes no server options)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Large-message tests run on the servers that can take them; pstest's case is not
    collected at all (a capability of the server, not a skip)."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("pubsub_emulator") if callspec is not None else None
        needs_large = item.get_closest_marker(LARGE_MESSAGES) is not None
        (dropped if needs_large and kind == "pstest" else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=emulator_kinds())
def pubsub_emulator(request: pytest.FixtureRequest) -> Iterator[PubSubEmulator]:
    """A running Pub/Sub server; PUBSUB_EMULATOR_HOST points at it while the fixture lives."""
    kind: str = request.param
    if kind == "external":
        host = os.environ["PUBSUB_EMULATOR_HOST"]
        project = os.environ.get("PUBSUB_PROJECT_ID", PROJECT)
        yield PubSubEmulator(host=host, project=project, kind=kind)
        return

    with contextlib.ExitStack() as stack:
        if kind in binaries.SERVERS:
            path = binaries.binary(kind)
            if path is None:
                _unavailable(
                    f"{binaries.SERVERS[kind]} not built for the current sources "
                    f"(expected in {binaries.build_dir()}); {_BUILD_HINT}"
                )
                return
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pubsub-")))
            host = stack.enter_context(run_binary(path, log_dir))
        elif _docker_works():
            host = stack.enter_context(run_docker())
        else:
            _unavailable(f"no Go test server built ({_BUILD_HINT}) and no Docker engine")
            return

        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            yield PubSubEmulator(host=host, project=PROJECT, kind=kind)
        finally:
            if previous is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def pubsub_clients(pubsub_emulator: PubSubEmulator) -> Iterator[PubSubClients]:
    """Publisher and subscriber clients talking to ``pubsub_emulator``."""
    from dispatcher.adapters.pubsub_clients import publisher_client, subscriber_client

    # PUBSUB_EMULATOR_HOST is set while pubsub_emulator lives: the factories then open an
    # insecure channel to it with production's message-size limits (no 4 MiB receive cap).
    publisher = publisher_client()
    subscriber = subscriber_client()
    try:
        yield PubSubClients(publisher, subscriber, pubsub_emulator.project)
    finally:
        publisher.stop()
        subscriber.close()


MakeTopicSubscription = Callable[..., TopicSubscription]


@pytest.fixture
def make_topic_subscription(pubsub_clients: PubSubClients) -> Iterator[MakeTopicSubscription]:
    """Factory: a uniquely named topic + subscription (deleted again after the test).

    Keyword arguments: ``ack_deadline_seconds`` (default 10), ``max_delivery_attempts``
    (adds a dead-letter topic and a subscription on it), ``enable_message_ordering``,
    ``prefix`` (for readable names). Exactly-once delivery stays off.
    """
    from google.api_core import exceptions

    pub = pubsub_clients.publisher
    sub = pubsub_clients.subscriber
    project = pubsub_clients.project
    topics: list[str] = []
    subscriptions: list[str] = []

    def make(
        *,
        ack_deadline_seconds: int = 10,
        max_delivery_attempts: int | None = None,
        enable_message_ordering: bool = False,
        prefix: str = "t",
    ) -> TopicSubscription:
        suffix = f"{prefix}-{uuid.uuid4().hex[:12]}"
        topic = pub.topic_path(project, suffix)
        pub.create_topic(request={"name": topic})
        topics.append(topic)
        request: dict[str, Any] = {
            "name": sub.subscription_path(project, f"{suffix}-sub"),
            "topic": topic,
            "ack_deadline_seconds": ack_deadline_seconds,
            "enable_message_ordering": enable_message_ordering,
            "enable_exactly_once_delivery": False,
        }
        result = TopicSubscription(topic=topic, subscription=request["name"])
        if max_delivery_attempts is not None:
            dlq_topic = pub.topic_path(project, f"{suffix}-dlq")
            pub.create_topic(request={"name": dlq_topic})
            topics.append(dlq_topic)
            dlq_sub = sub.subscription_path(project, f"{suffix}-dlq-sub")
            sub.create_subscription(request={"name": dlq_sub, "topic": dlq_topic})
            subscriptions.append(dlq_sub)
            request["dead_letter_policy"] = {
                "dead_letter_topic": dlq_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
            result.dead_letter_topic = dlq_topic
            result.dead_letter_subscription = dlq_sub
        sub.create_subscription(request=request)
        subscriptions.append(request["name"])
        return result

    yield make

    for name in reversed(subscriptions):
        with contextlib.suppress(exceptions.GoogleAPICallError):
            sub.delete_subscription(request={"subscription": name}, timeout=10)
    for name in reversed(topics):
        with contextlib.suppress(exceptions.GoogleAPICallError):
            pub.delete_topic(request={"topic": name}, timeout=10)


def drain(clients: Any, subscription: str, *, expected: int, timeout: float = 60) -> dict[str, Any]:
    """Pull and ack until ``expected`` distinct messages arrived, then once more for extras."""
    got: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    extra_check = False
    while time.monotonic() < deadline:
        response = clients.subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        if response.received_messages:
            clients.subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
        for received in response.received_messages:
            got[received.message.message_id] = received.message
        if len(got) >= expected:
            if extra_check and not response.received_messages:
                break
            extra_check = True
    return got
