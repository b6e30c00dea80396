"""SHIM: re-exports tests.integration.procs until the real dispatcher.local.process lands at merge."""

# shim: replaced by the real module at merge
from tests.integration.procs import *  # noqa: F403
