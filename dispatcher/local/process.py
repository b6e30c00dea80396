"""SHIM: re-exports today's tests.* module; replaced by the real module at merge."""

# shim: replaced by the real module at merge
from tests.integration.procs import *  # noqa: F403
