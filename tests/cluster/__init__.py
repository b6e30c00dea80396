"""Tests of the local Kubernetes cluster: real kube-apiserver/etcd/scheduler/controller-manager,
kwok fake nodes shaped like the GKE node pools, and Argo's workflow-controller.

Why: the dispatcher's contract is with the Kubernetes API and Argo's controller semantics
(409 on duplicate names, label watches, retries, onExit, DAG `when`), which fakes get wrong.
The cluster itself is dispatcher.local.cluster (binaries from servers/cluster/build.sh, Go
module proxy only); `python -m tests.cluster up|down|status|env` and the pytest plugin
(`tests.cluster.plugin`) are thin layers over it.
"""
