"""Per-order claims against the real kube-apiserver: of two replicas claiming one order at
the same moment, at most one may create it; claims expire; gone replicas' objects are
collected. Each test uses its own environment label and deletes its objects at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from dispatcher.adapters.claims import KubeClaims, claims_object_name, claims_selector
from dispatcher.errors import DispatchError
from tests.cluster.plugin import K8sCluster
from tests.faults.kube_proxy import Faults, KubeFaultProxy
from tests.integration.cluster_support import (  # noqa: F401 - kube_api is the `api` fixture
    kube_api,
    scratch_environment,
)

pytestmark = pytest.mark.cluster
HOLD = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(api: k8s.ApiClient, k8s_cluster: K8sCluster) -> Iterator[str]:
    with scratch_environment(api, k8s_cluster.namespace, "claims", claims_selector) as name:
        yield name


@pytest.fixture
def make(api: k8s.ApiClient, k8s_cluster: K8sCluster, env: str) -> Callable[..., KubeClaims]:
    def build(identity: str, **options: object) -> KubeClaims:
        return KubeClaims(
            options.pop("api", api),  # type: ignore[arg-type]
            namespace=k8s_cluster.namespace,
            environment=env,
            identity=identity,
            hold_seconds=HOLD,
            **options,  # type: ignore[arg-type]
        )

    return build


def claim_together(
    first: KubeClaims, second: KubeClaims, order_ids: list[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """Both replicas claim the same orders at the same moment (as far as threads allow)."""
    start = threading.Barrier(2)
    results: list[frozenset[str] | BaseException] = [frozenset(), frozenset()]

    def run(index: int, claims: KubeClaims) -> None:
        start.wait(timeout=10)
        try:
            results[index] = claims.claim(order_ids, renew=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    a, b = results
    assert isinstance(a, frozenset) and isinstance(b, frozenset), results
    return a, b


def test_of_two_replicas_claiming_one_order_at_once_at_most_one_may_create(
    make: Callable[..., KubeClaims],
) -> None:
    first, second = make("replica-a"), make("replica-b")
    winners = {"a": 0, "b": 0, "neither": 0}
    for round_ in range(25):
        order_ids = [f"o{round_}-{i}" for i in range(3)]
        a, b = claim_together(first, second, order_ids)
        for order_id in order_ids:
            # An order neither contests may be created by both: never allowed.
            assert order_id in a or order_id in b, f"round {round_}: both may create {order_id}"
        winners["a" if not a else "b" if not b else "neither"] += 1
    # Whoever came second saw the first's claim; a later claim sees the winner's too.
    assert first.claim(["o0-0"], renew=False) or second.claim(["o0-0"], renew=False)
    assert sum(winners.values()) == 25, winners


def test_a_claim_holds_for_its_hold_then_expires(make: Callable[..., KubeClaims]) -> None:
    clock = Clock()
    first, second = make("replica-a", clock=clock), make("replica-b", clock=clock)
    assert first.claim(["x", "y"], renew=False) == frozenset()
    assert second.claim(["y", "z"], renew=False) == frozenset({"y"})
    # The loser withdrew "y": the winner's retry (a renewal) reports nothing, the loser's
    # claim on "z" stands against a third replica.
    assert first.claim(["x", "y"], renew=True) == frozenset()
    assert make("replica-c", clock=clock).claim(["z"], renew=False) == frozenset({"z"})
    clock.now += HOLD + 2
    assert second.claim(["y"], renew=False) == frozenset(), "an expired claim still counted"


def test_objects_of_gone_replicas_are_collected_and_close_deletes_its_own(
    api: k8s.ApiClient, k8s_cluster: K8sCluster, make: Callable[..., KubeClaims], env: str
) -> None:
    core = k8s.CoreV1Api(api)
    clock = Clock()
    gone, staying = make("gone", clock=clock), make("staying", clock=clock)
    gone.claim(["a"], renew=False)
    staying.claim(["b"], renew=False)

    def names() -> set[str]:
        listed = core.list_namespaced_config_map(
            k8s_cluster.namespace, label_selector=claims_selector(env)
        )
        return {item.metadata.name for item in listed.items}

    assert names() == {gone.name, staying.name}
    clock.now += HOLD * 5  # expired, but not yet long enough to collect
    staying.claim(["c"], renew=False)
    assert gone.name in names()
    clock.now += HOLD * 20  # the annotation says when it was written: now it is stale
    staying.claim(["d"], renew=False)
    assert names() == {staying.name}
    staying.close()
    assert names() == set()
    assert staying.name == claims_object_name(env, "staying")


def test_an_unreachable_api_server_fails_the_claim_with_a_dispatch_error(
    k8s_cluster: K8sCluster, make: Callable[..., KubeClaims], tmp_path: Path
) -> None:
    faults = Faults(only_methods=frozenset({"GET", "PUT"}))
    with KubeFaultProxy(k8s_cluster.kubeconfig, faults) as proxy:
        flaky = k8s_config.new_client_from_config(
            config_file=str(proxy.kubeconfig(tmp_path / "proxy.yaml"))
        )
        claims = make("flaky", api=flaky)
        assert claims.claim(["p"], renew=False) == frozenset()
        faults.server_error = 1.0  # every update and list answers 500
        with pytest.raises(DispatchError):
            claims.claim(["q"], renew=False)
        assert faults.injected["500"] >= 1
