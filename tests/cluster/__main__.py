"""`python -m tests.cluster up|down|status|env`: run the local test cluster by hand.

Why: developers debugging a cluster test want the same cluster the pytest fixture uses, kept
running between test runs (the fixture reuses a healthy cluster it finds in the state dir).
A thin layer over dispatcher.local.cluster, until the `dispatcher` CLI carries these commands.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from dispatcher.local import autoscaler, cluster
from dispatcher.local.paths import NotBuiltError


def _up(args: argparse.Namespace) -> int:
    try:
        pools = autoscaler.base_pools() if args.autoscaling else None
        info = cluster.up(quiet=args.quiet, autoscaling=pools)
    except NotBuiltError as exc:
        print(f"tests.cluster: binaries not built: {exc}", file=sys.stderr)
        return 3
    print(f"export KUBECONFIG={shlex.quote(info.kubeconfig)}")
    return 0


def _down(_: argparse.Namespace) -> int:
    stopped = cluster.down()
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _status(_: argparse.Namespace) -> int:
    info, live, healthy = cluster.status()
    if info is None and not live:
        print("not running")
        return 1
    if info is not None:
        print(f"server:     {info.server}")
        print(f"kubeconfig: {info.kubeconfig}")
        print(f"state:      {info.state}")
    total = 0
    for comp in live:
        total += comp.rss_kib
        print(f"  {comp.name:<24} pid {comp.pid:<8} rss {comp.rss_kib / 1024:7.1f} MiB")
    missing = sorted(set(cluster.components(info)) - {c.name for c in live})
    if missing:
        print(f"  not running: {', '.join(missing)}")
    print(f"total rss {total / 1024:.1f} MiB; {'healthy' if healthy else 'NOT healthy'}")
    return 0 if healthy else 1


def _env(_: argparse.Namespace) -> int:
    info = cluster.load_info()
    if info is None or not cluster.is_healthy(info):
        print("tests.cluster: no running cluster (python -m tests.cluster up)", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={shlex.quote(info.kubeconfig)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start (or reuse) the cluster; prints export KUBECONFIG=...")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    up.add_argument(
        "--autoscaling",
        action="store_true",
        help="no fixed pool nodes: Karpenter scales the k8s/infra/base pools from zero",
    )
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop everything and delete the state dir").set_defaults(func=_down)
    sub.add_parser("status", help="what runs, RSS, health").set_defaults(func=_status)
    sub.add_parser("env", help="print export KUBECONFIG=... for a running cluster").set_defaults(
        func=_env
    )
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
