"""SHIM: re-exports the Pub/Sub server helpers until the real dispatcher.local.pubsub lands."""

# shim: replaced by the real module at merge
from tests.pubsub.binaries import *  # noqa: F403
from tests.pubsub.plugin import run_binary, start_server, wait_until_serving  # noqa: F401
