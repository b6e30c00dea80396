"""Pub/Sub failures as the operator commands report them, without the SDK leaking upward.

Commands catch :data:`CREDENTIAL_ERRORS` and print :func:`explain`: missing credentials read as
advice rather than a traceback. Looking a subscription's topic up translates the SDK's error
into the project's error tree.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError

from dispatcher.errors import DispatchError

#: What a command catches when credentials are missing or unusable.
CREDENTIAL_ERRORS: tuple[type[Exception], ...] = (GoogleAuthError,)
#: The same, with the project's own errors: what an operator command reports and exits on.
COMMAND_ERRORS: tuple[type[Exception], ...] = (DispatchError, GoogleAuthError)


def explain(exc: Exception) -> str:
    """The error as an operator should read it (credentials get a hint)."""
    if isinstance(exc, GoogleAuthError):
        return (
            f"no usable Google credentials ({exc.__class__.__name__}); run "
            "'gcloud auth application-default login', use Workload Identity, or set "
            "PUBSUB_EMULATOR_HOST for an emulator"
        )
    return str(exc)


def topic_of(subscriber: Any, subscription: str, *, option: str = "--to-topic") -> str:
    """The topic a subscription reads from; DispatchError (naming ``option``) when Pub/Sub
    cannot say."""
    try:
        return str(subscriber.get_subscription(subscription=subscription).topic)
    except gexc.GoogleAPICallError as exc:
        raise DispatchError(
            f"cannot look up the orders topic of {subscription} ({exc.message}); pass {option}"
        ) from exc
