"""Shared pytest wiring: the server fixtures, thin layers over dispatcher.local, which starts
the servers that servers/ builds."""

pytest_plugins = ["tests.pubsub.plugin", "tests.cluster.plugin"]
