"""``--plot FILE.png``: backlog, live Workflows and nodes per pool over simulated time.

matplotlib is an optional extra (``pip install 'burst-dispatcher[simulate]'``): the service
image does not need it, so it is imported only when a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path

from dispatcher.simulate.results import Results


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def plot(results: Results, path: Path, *, title: str) -> None:
    try:
        import matplotlib  # optional, and heavy to import

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'burst-dispatcher[simulate]'"
        ) from exc
    samples = results.timeline
    hours = [s.at / 3600 for s in samples]
    figure, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    top.plot(hours, [s.backlog for s in samples], color="tab:red")
    top.set_ylabel("backlog (orders)")
    middle.plot(hours, [s.live for s in samples], label="live Workflows")
    middle.plot(hours, [s.objects for s in samples], label="Workflow objects", linestyle="--")
    middle.set_ylabel("Workflows")
    middle.legend(loc="upper right")
    for pool in results.pools:
        bottom.step(hours, [s.nodes.get(pool, 0) for s in samples], where="post", label=pool)
    bottom.set_ylabel("nodes")
    bottom.set_xlabel("simulated hours")
    bottom.legend(loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
