"""SHIM: re-exports tests.cluster.cluster until the real dispatcher.local.cluster lands at merge."""

# shim: replaced by the real module at merge
from tests.cluster.cluster import *  # noqa: F403
