"""`dispatcher local up | status | down`: the shipped dev environment on this machine.

Why: the main job (orders on Pub/Sub becoming Workflows that Argo runs on size-matched pools)
should be seen without a GCP project. Everything here reuses the tests' way of starting each
server and of applying the shipped overlay (dispatcher.local.*), and keeps its own state dir,
so it never touches the test cluster. What GKE would run and this stack runs instead:

- the control plane, the real Argo controller and kwok nodes shaped like the dev node pools;
- the load-grade Pub/Sub emulator (fastsub) with the topics and subscriptions of the dev infra;
- `dispatcher run` as a local process with the rendered Deployment's command line, the shipped
  ServiceAccount's token and the ConfigMap mirrored to a file (the kubelet's job, mirror.py).

Objects that only make sense on GKE are not applied (SKIPPED_KINDS, docs/local.md).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dispatcher.config import parse_settings
from dispatcher.local import (
    builds,
    cluster,
    cluster_objects,
    daemons,
    identities,
    nodepools,
    overlay,
    paths,
    pubsub,
    standin,
    topics,
)
from dispatcher.local import economics as profile

#: Environments the stack can stand up: dev by default; prod for swarm economics, so that the
#: prod pools' sizes and limits (not dev's 5/3/2 nodes) set the pace (`--environment prod`).
ENVIRONMENTS = ("dev", "prod")
# The dispatcher runs as a local process; nothing scales it or scrapes it here.
SKIPPED_KINDS = frozenset({"Deployment", "ScaledObject", "TriggerAuthentication", "PodMonitoring"})
NODE_PREFIX = "gke-local-dev"
CONFIG_MAP = "burst-dispatcher-config"
INFO_FILE = "stack.json"
#: The dispatcher process's name, and its stand-in Pod's (dispatcher/local/standin.py).
POD_NAME = "burst-dispatcher-local"
# Stopped in this order by `down`: the client of the others first.
DAEMONS = ("dispatcher", "mirror", "fastsub")

# The ServiceAccount token is bound for an hour (identities); `up` renews it before that.
TOKEN_RENEW_SECONDS = 45 * 60

Say = Callable[[str], None]


@dataclass(frozen=True)
class StackInfo:
    """What `status` shows and the swarm needs; saved as <state>/stack.json."""

    state: str
    kubeconfig: str
    server: str
    dispatcher_kubeconfig: str
    namespace: str
    environment: str
    project: str
    orders_topic: str
    emulator_host: str
    ops_port: int

    def exports(self) -> dict[str, str]:
        """The environment that points other `dispatcher` commands at this stack."""
        return {
            "KUBECONFIG": self.kubeconfig,
            "PUBSUB_EMULATOR_HOST": self.emulator_host,
            "DISPATCHER_CONFIG": str(Path(self.state) / "config" / "config.yaml"),
            "DISPATCHER_ORDERS_TOPIC": self.orders_topic,
        }


def load(state: Path | None = None) -> StackInfo | None:
    try:
        text = ((state or paths.local_state_dir()) / INFO_FILE).read_text()
        return StackInfo(**json.loads(text))
    except (OSError, ValueError, TypeError):
        return None


def _cluster_state(state: Path) -> contextlib.AbstractContextManager[None]:
    """The cluster code keeps its state where BURST_CLUSTER_STATE_DIR says: ours, here."""
    return cluster.state_override(state / "cluster")


def overlays(environment: str) -> tuple[str, str]:
    """(application overlay, infra overlay) of one environment."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"no local stack for environment {environment!r}: {ENVIRONMENTS}")
    return f"k8s/overlays/{environment}", f"k8s/infra/overlays/{environment}"


def up(
    say: Say, *, autoscaling: bool = False, economics: Path | None = None, environment: str = "dev"
) -> StackInfo:
    """Start what is missing, reuse what runs, (re)apply the overlay; idempotent.

    `autoscaling`: no fixed nodes; Karpenter scales the infra's pools from zero.
    `environment`: whose overlays (app and infra) the stack applies; dev unless told.
    `economics`: an economics file (economics.py): step pods run for a time that follows their
    input size and spot attempts are preempted at its rate."""
    state = paths.local_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    before = load(state)
    builds.ensure_built(say, autoscaling=autoscaling)
    kubectl = paths.bin_dir() / "kubectl"
    app_overlay, infra_overlay = overlays(environment)
    app = overlay.render(kubectl, app_overlay)
    infra = overlay.render(kubectl, infra_overlay)
    with _cluster_state(state):
        say("control plane + Argo controller (reused when healthy)")
        info = cluster.up(quiet=False, autoscaling=infra if autoscaling else None)
    host, fresh_emulator = _emulator(state, before, say)
    config_map = next(
        d for d in app if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CONFIG_MAP
    )
    settings = parse_settings(config_map["data"]["config.yaml"], source=app_overlay, environ={})
    namespace = settings.namespace
    deployment = next(d for d in app if d["kind"] == "Deployment")
    with info.api_client() as admin:
        if autoscaling:
            say(f"no fixed nodes: Karpenter makes them for the {environment} pools on demand")
        else:
            nodes = overlay.pool_nodes(infra, NODE_PREFIX)
            overlay.ensure_nodes(admin, nodes)
            say(f"{len(nodes)} kwok nodes shaped like the dev pools")
        local = [d for d in app if d["kind"] not in SKIPPED_KINDS]
        if autoscaling:
            local = nodepools.honour_safe_to_evict(local)
        if economics is not None:
            local = profile.annotate(local, profile.load(economics), infra=infra)
            say(f"economics profile {economics} on the step template")
        overlay.apply(kubectl, info.kubeconfig, local, force=True)
        shipped = cluster_objects.apply_argo_snippet(admin)
        say(f"Argo controller settings of k8s/argo merged: {', '.join(sorted(shipped))}")
        say(f"applied {len(local)} objects of {app_overlay} (server-side, as shipped)")
        orders_topic = topics.create(infra, project=settings.pubsub.project, host=host)
        say(f"topics and subscriptions of {infra_overlay} created in the emulator at {host}")
        token = state / "dispatcher.kubeconfig"
        restart = fresh_emulator or before is None or before.server != info.server
        if restart:
            daemons.stop(state, "mirror")
        if restart or _token_age(token) > TOKEN_RENEW_SECONDS:
            daemons.stop(state, "dispatcher")
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        if daemons.find(state, "dispatcher") is None:
            identities.service_account_kubeconfig(
                admin, admin_kubeconfig=info.kubeconfig, namespace=namespace, account=account,
                path=token,
            )  # fmt: skip
    mount = state / "config"
    if daemons.find(state, "mirror") is None:
        mirror = daemons.start(
            "mirror",
            [sys.executable, "-m", "dispatcher.local.mirror", info.kubeconfig, namespace,
             CONFIG_MAP, str(mount)],
            state=state, env={},
        )  # fmt: skip
        daemons.wait_for_line(mirror, "mirroring ", timeout=60)
    port = _dispatcher(state, deployment, mount=mount, host=host, token=token, say=say)
    with info.api_client() as admin:  # so that `dispatcher status` finds it as it finds pods
        standin.register(admin, namespace=namespace, name=POD_NAME, port=port)
    stack = StackInfo(
        state=str(state), kubeconfig=info.kubeconfig, server=info.server,
        dispatcher_kubeconfig=str(token), namespace=namespace,
        environment=settings.environment, project=settings.pubsub.project,
        orders_topic=orders_topic, emulator_host=host, ops_port=port,
    )  # fmt: skip
    (state / INFO_FILE).write_text(json.dumps(asdict(stack), indent=2))
    return stack


def _token_age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _emulator(state: Path, before: StackInfo | None, say: Say) -> tuple[str, bool]:
    """(host, started now): the recorded fastsub when it still serves, else a new one."""
    running = daemons.find(state, "fastsub")
    if running is not None and before is not None:
        with contextlib.suppress(TimeoutError):
            pubsub.wait_until_serving(before.emulator_host, 5)
            say(f"Pub/Sub emulator reused at {before.emulator_host}")
            return before.emulator_host, False
    daemons.stop(state, "fastsub")
    binary = pubsub.binary("fast")
    if binary is None:
        raise RuntimeError("the fast Pub/Sub emulator is not built")
    started = daemons.start("fastsub", [str(binary), "-addr", "127.0.0.1:0"], state=state, env={})
    host = daemons.wait_for_line(started, "listening ", timeout=30).split()[1]
    pubsub.wait_until_serving(host, 30)
    say(f"Pub/Sub emulator (fastsub) started at {host}, pid {started.pid}")
    return host, True


def _dispatcher(
    state: Path, deployment: dict[str, Any], *, mount: Path, host: str, token: Path, say: Say
) -> int:
    """Start `dispatcher run` as the Deployment would (unless it runs); its ops port."""
    log = state / "logs" / "dispatcher.log"
    running = daemons.find(state, "dispatcher")
    if running is None:
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        argv = [*container.get("command", []), *container.get("args", [])]
        if argv[:2] != ["dispatcher", "run"]:
            raise RuntimeError(f"the dev Deployment does not run `dispatcher run`: {argv}")
        mount_path = next(
            m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config"
        )
        args = [a.replace(mount_path, str(mount)) for a in argv[1:]]
        env = {
            "PUBSUB_EMULATOR_HOST": host,
            "KUBECONFIG": str(token),
            "POD_NAME": POD_NAME,
            "POD_NAMESPACE": deployment["metadata"]["namespace"],
            "DISPATCHER_LOG_FORMAT": "json",
        }
        log.unlink(missing_ok=True)
        # Port 8080 may be taken here; everything else is as rendered.
        running = daemons.start(
            "dispatcher", [sys.executable, "-m", "dispatcher", *args, "--http-port", "0"],
            state=state, env=env,
        )  # fmt: skip
        say(f"dispatcher run started, pid {running.pid}, as {pod['serviceAccountName']}")
    return int(_ops_event(state, running)["port"])


def _ops_event(state: Path, daemon: daemons.Daemon) -> dict[str, Any]:
    """The dispatcher's `ops_listening` log event (its /metrics port)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            for line in daemon.log.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("message") == "ops_listening":
                        return event
        if daemons.find(state, daemon.name) is None:
            raise RuntimeError(f"dispatcher exited; see {daemon.log}")
        time.sleep(0.1)
    raise TimeoutError(f"dispatcher not listening within 90s; see {daemon.log}")


def status() -> tuple[StackInfo | None, list[daemons.Daemon], bool]:
    """(recorded stack, its live daemons, cluster healthy)."""
    state = paths.local_state_dir()
    with _cluster_state(state):
        info = cluster.load_info()
        healthy = info is not None and cluster.is_healthy(info)
    return load(state), daemons.running(state), healthy


def down(say: Say) -> None:
    """Stop every process the stack started and remove its state."""
    state = paths.local_state_dir()
    for name in DAEMONS:
        if daemons.stop(state, name):
            say(f"stopped {name}")
    with _cluster_state(state):
        stopped = cluster.down()
    if stopped:
        say(f"stopped the cluster: {', '.join(stopped)}")
    shutil.rmtree(state, ignore_errors=True)
