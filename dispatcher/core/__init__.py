"""The pure core: decisions on plain data with an injected clock.

Nothing below this package talks to Pub/Sub, Kubernetes or the network; the import-linter
contract in pyproject.toml keeps it that way.
"""
