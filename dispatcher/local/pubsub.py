"""SHIM: re-exports the Pub/Sub server helpers until the real dispatcher.local.pubsub lands."""

# shim: replaced by the real module at merge
from tests.pubsub.binaries import *  # noqa: F403
from tests.pubsub.plugin import run_binary as run_binary
from tests.pubsub.plugin import start_server as start_server
from tests.pubsub.plugin import wait_until_serving as wait_until_serving
