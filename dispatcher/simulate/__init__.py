"""``dispatcher simulate``: the service's own core on simulated time, against a cluster model.

A layer of its own: it imports the core, the configuration and the operator's example-order
generator, never the service or the adapters; the service never imports it.
"""
