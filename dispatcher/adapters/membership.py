"""Which replicas are alive: one coordination Lease per replica, renewed in the background.

The count and this replica's rank split the global limits into shares (see
``dispatcher.core.ratelimit.share`` and ``cap_share``) so that several replicas together keep
to the configured rate and caps. Leases carry the environment label: two environments that
share a namespace have limits of their own and must not split each other's.
"""

from __future__ import annotations

import threading
from typing import Any

import tenacity
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.core.render import LABEL_ENVIRONMENT, LABEL_MANAGED_BY, MANAGED_BY
from dispatcher.logging import get_logger

log = get_logger()


class Membership:
    """Live replicas, from one coordination Lease per replica renewed in the background.

    Global limits are split into shares: a replica's share of the creation rate is
    ``rate / replicas`` and of each cap ``cap // replicas`` (+1 for the lowest ranks while a
    remainder is left), so the shares add up to the configured limit exactly.
    """

    LABEL = "burst-dispatcher.io/replica-lease"

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        environment: str,
        identity: str,
        lease_seconds: int = 30,
    ) -> None:
        self._api = k8s.CoordinationV1Api(api)
        self._namespace = namespace
        self._environment = environment
        self.identity = identity
        self._lease_seconds = lease_seconds
        self._members: list[str] = [identity]
        self._renewals = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="membership", daemon=True)

    def members(self) -> list[str]:
        return self._members

    def settled(self) -> bool:
        """True from the first renewal after joining: by then every peer has renewed (they
        renew as often) and seen this replica, so no peer still uses a share that counted
        one replica fewer. Until then this replica admits nothing."""
        return self._renewals >= 2

    def start(self, timeout: float = 60.0) -> None:
        """Join (retrying through API hiccups), then renew in the background.

        A replica must not start dispatching believing it is alone while others exist: it
        would take whole shares of the limits. So joining is retried, and failing to join
        within ``timeout`` stops start-up.
        """
        joining = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_worth_retrying),
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=5.0),
            stop=tenacity.stop_after_delay(timeout),
            reraise=True,
        )
        joining(self._renew)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._api.delete_namespaced_lease(self._lease_name(), self._namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("lease_release_failed", error=str(exc.reason))
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself anyway
            log.warning("lease_release_failed", error=f"{type(exc).__name__}: {exc}")

    def _lease_name(self) -> str:
        return f"burst-dispatcher-{self.identity}"[:63].rstrip("-.")

    def _run(self) -> None:
        while not self._stop.wait(self._lease_seconds / 3):
            try:
                self._renew()
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
                log.warning("lease_renew_failed", error=f"{type(exc).__name__}: {exc}")

    def _renew(self) -> None:
        now = _utcnow()
        body = k8s.V1Lease(
            metadata=k8s.V1ObjectMeta(
                name=self._lease_name(),
                labels={
                    self.LABEL: "true",
                    LABEL_MANAGED_BY: MANAGED_BY,
                    LABEL_ENVIRONMENT: self._environment,
                },
            ),
            spec=k8s.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self._lease_seconds,
                renew_time=now,
            ),
        )
        try:
            self._api.patch_namespaced_lease(self._lease_name(), self._namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._api.create_namespaced_lease(self._namespace, body)
        leases = self._api.list_namespaced_lease(
            self._namespace, label_selector=f"{self.LABEL}=true"
        )
        alive = []
        for lease in leases.items:
            # A Lease without the label comes from a release before it: still counted, so a
            # rollout from that release never sees fewer peers than there are.
            labels = (lease.metadata.labels if lease.metadata else None) or {}
            if labels.get(LABEL_ENVIRONMENT, self._environment) != self._environment:
                continue
            spec = lease.spec
            if spec is None or spec.renew_time is None or not spec.holder_identity:
                continue
            age = (now - spec.renew_time).total_seconds()
            if age <= (spec.lease_duration_seconds or self._lease_seconds):
                alive.append(spec.holder_identity)
        self._members = sorted(set(alive) | {self.identity})
        self._renewals += 1


def _worth_retrying(error: BaseException) -> bool:
    """Everything but a refusal (401/403/404 on the API itself) is worth another try."""
    return not (isinstance(error, ApiException) and error.status in (401, 403))


def _utcnow() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)
