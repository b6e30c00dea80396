"""The local stack: the real servers the dispatcher talks to, run on one machine.

Why a package of the product: `dispatcher local` and the test suite start the same local
control plane (kube-apiserver, etcd, kwok nodes shaped like the GKE pools, Argo's controller),
the same Pub/Sub servers and apply the shipped overlay the same way, so there is one way to do
each. The Go sources and build scripts of the servers live in `servers/` of the source checkout.
It sits beside the service and the operator: nothing below the commands may import it.
Stdlib only at import time, so `servers/pubsub/binaries.py` can reach `pubsub.py` with any
python3.
"""
