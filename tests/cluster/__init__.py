"""Local Kubernetes test cluster: real kube-apiserver/etcd/scheduler/controller-manager, kwok
fake nodes shaped like the GKE node pools, and Argo's workflow-controller.

Why: the dispatcher's contract is with the Kubernetes API and Argo's controller semantics
(409 on duplicate names, label watches, retries, onExit, DAG `when`), which fakes get wrong.
Binaries come from `build.sh` (Go module proxy only); `python -m tests.cluster up|down|status|env`
and the pytest plugin (`tests.cluster.plugin`) start and stop it.
"""
