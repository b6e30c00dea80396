"""burst-dispatcher: swarms of Pub/Sub orders in, batched and rate-limited Argo Workflows out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("burst-dispatcher")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
