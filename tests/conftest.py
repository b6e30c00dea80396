"""Shared pytest wiring: the server fixtures live next to the code that builds the servers."""

pytest_plugins = ["tests.pubsub.plugin", "tests.cluster.plugin"]
