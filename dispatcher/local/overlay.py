"""SHIM: re-exports today's tests.* module; replaced by the real module at merge."""

# shim: replaced by the real module at merge
from tests.integration.rehearsal_kit import *  # noqa: F403
