"""SHIM: re-exports tests.integration.rehearsal_identities until the real dispatcher.local.identities lands at merge."""

# shim: replaced by the real module at merge
from tests.integration.rehearsal_identities import *  # noqa: F403
