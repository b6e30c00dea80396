"""Benchmarks for burst-dispatcher (run as modules, e.g. ``python -m bench.dispatch_bench``)."""
