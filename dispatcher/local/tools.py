"""SHIM: re-exports tests.manifests.tools until the real dispatcher.local.tools lands at merge."""

# shim: replaced by the real module at merge
from tests.manifests.tools import *  # noqa: F403
