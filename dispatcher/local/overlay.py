"""SHIM: re-exports tests.integration.rehearsal_kit until the real dispatcher.local.overlay lands at merge."""

# shim: replaced by the real module at merge
from tests.integration.rehearsal_kit import *  # noqa: F403
