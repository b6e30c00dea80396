"""The kubelet's ConfigMap volume for the local dispatcher, as a process of its own.

Why: on GKE the kubelet keeps the mounted config file equal to the ConfigMap, which is what makes
`dispatcher limits set` a live change. The local dispatcher is a plain process, so this one
stands in for the kubelet (overlay.MountedConfigMap, the same code the rehearsal uses) and must
keep running after `dispatcher local up` returns, until `dispatcher local down`.

    python -m dispatcher.local.mirror KUBECONFIG NAMESPACE NAME DIRECTORY
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from kubernetes import config as k8s_config

from dispatcher.local import overlay


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    kubeconfig, namespace, name, directory = argv
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with (
        k8s_config.new_client_from_config(config_file=kubeconfig) as api,
        overlay.MountedConfigMap(
            api, namespace=namespace, name=name, directory=Path(directory)
        ) as volume,
    ):
        print(f"mirroring {namespace}/{name} into {directory}", flush=True)
        while not stop.wait(1.0):
            pass
        print(f"stopped after {volume.updates} updates", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
