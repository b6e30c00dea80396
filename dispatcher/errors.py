"""One error tree for the outside world: transient (retry, then release) or permanent.

Adapters translate SDK exceptions into these with ``raise ... from exc`` so the rest of the
program never needs to know which SDK raised what.
"""

from __future__ import annotations

from dispatcher.core.order import Reason


class DispatchError(Exception):
    """Base of every error an adapter raises."""


class TransientError(DispatchError):
    """Worth retrying: throttling, server errors, timeouts, dropped connections."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when an API answered


class PermanentError(DispatchError):
    """Retrying cannot help; the orders involved are dead-lettered with ``reason``."""

    def __init__(self, message: str, *, reason: Reason, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status  # the HTTP status, when an API answered
