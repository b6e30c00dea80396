"""Credentials the way GKE hands them out, for the local stack: never `system:masters`.

Why: a test that runs as cluster admin cannot notice a missing RBAC verb. The dispatcher gets
what the kubelet would mount in its pod (a bound TokenRequest token of the shipped
ServiceAccount); an operator gets a client certificate whose organisation is the shipped
operator group, issued by the cluster's own client signer through the CertificateSigningRequest
API (what Google Groups for RBAC gives a person on GKE: a user in a group).
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from dispatcher.local.overlay import poll, run


def _cluster_entry(admin_kubeconfig: str) -> dict[str, Any]:
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    name = current["context"]["cluster"]
    return dict(next(c for c in config["clusters"] if c["name"] == name)["cluster"])


def _write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, str]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rehearsal", "cluster": cluster}],
        "users": [{"name": "rehearsal", "user": user}],
        "contexts": [
            {"name": "rehearsal", "context": {"cluster": "rehearsal", "user": "rehearsal"}}
        ],
        "current-context": "rehearsal",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def service_account_kubeconfig(
    api: k8s.ApiClient, *, admin_kubeconfig: str, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig holding a bound token of the ServiceAccount, as the pod would mount it."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"}
    request["spec"] = {"expirationSeconds": 3600}  # type: ignore[assignment]
    answer = k8s.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request)
    token = str(answer.status.token)
    return _write_kubeconfig(path, _cluster_entry(admin_kubeconfig), {"token": token})


def group_member_kubeconfig(
    api: k8s.ApiClient, *, admin_kubeconfig: str, user: str, group: str, path: Path
) -> Path:
    """A client certificate for `user` in `group`, signed by the cluster's client signer."""
    work = Path(tempfile.mkdtemp(prefix="csr-", dir=path.parent))
    key, csr = work / "key.pem", work / "csr.pem"
    run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/O={group}/CN={user}"]
    )  # fmt: skip
    certs = k8s.CertificatesV1Api(api)
    name = f"{user}-{os.urandom(4).hex()}"
    certs.create_certificate_signing_request(
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(csr.read_bytes()).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "expirationSeconds": 3600,
                "usages": ["client auth"],
            },
        }
    )
    pending = certs.read_certificate_signing_request(name)
    pending.status.conditions = [
        k8s.V1CertificateSigningRequestCondition(
            type="Approved", status="True", reason="Rehearsal", message="operator identity"
        )
    ]
    certs.replace_certificate_signing_request_approval(name, pending)
    issued: list[str] = []

    def signed() -> bool:
        certificate = certs.read_certificate_signing_request(name).status.certificate
        if certificate:
            issued.append(str(certificate))
        return bool(certificate)

    poll(f"CSR {name} signed", signed, 60)
    certs.delete_certificate_signing_request(name)
    user_entry = {
        "client-certificate-data": issued[0],
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
    return _write_kubeconfig(path, _cluster_entry(admin_kubeconfig), user_entry)
