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


class InvalidOrder(DispatchError):
    """An order the dispatcher would dead-letter, refused before it was sent.

    ``reason`` is the ``dlq_reason`` the service would give it, ``stage`` where it was refused
    (``validate``: the contract; ``classify``: the configuration), ``detail`` what was wrong.
    """

    def __init__(
        self, detail: str, *, reason: Reason, stage: str, order_id: str | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.stage = stage
        self.detail = detail
        self.order_id = order_id


class PublishError(DispatchError):
    """Pub/Sub did not take a valid order (the SDK's error is the ``__cause__``)."""

    def __init__(self, message: str, *, order_id: str | None = None) -> None:
        super().__init__(message)
        self.order_id = order_id
