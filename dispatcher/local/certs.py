"""Fresh certificates for one cluster run, made with the `openssl` CLI.

Why: every `up` gets its own CA so a stale kubeconfig can never talk to a newer cluster by
accident, and openssl is on every machine while the `cryptography` package is not a project
dependency. EC P-256 keys keep generation well under a second.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = ["-days", "30"]


@dataclass(frozen=True)
class Pki:
    """Paths of the files one cluster run uses."""

    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    admin_crt: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_pki(directory: Path) -> Pki:
    """Create a CA, the apiserver's serving cert, an admin client cert and the SA signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_crt=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_crt=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        admin_crt=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    _openssl(
        "req", "-x509", *_EC, *_DAYS,
        "-keyout", str(pki.ca_key), "-out", str(pki.ca_crt),
        "-subj", "/CN=burst-dispatcher-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    sans = ",".join(
        [
            "IP:127.0.0.1",
            "IP:10.96.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _openssl(
        "req", "-x509", *_EC, *_DAYS,
        "-CA", str(pki.ca_crt), "-CAkey", str(pki.ca_key),
        "-keyout", str(pki.server_key), "-out", str(pki.server_crt),
        "-subj", "/CN=kube-apiserver",
        "-addext", f"subjectAltName={sans}",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", "extendedKeyUsage=serverAuth",
    )  # fmt: skip
    _openssl(
        "req", "-x509", *_EC, *_DAYS,
        "-CA", str(pki.ca_crt), "-CAkey", str(pki.ca_key),
        "-keyout", str(pki.admin_key), "-out", str(pki.admin_crt),
        "-subj", "/O=system:masters/CN=kubernetes-admin",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", "extendedKeyUsage=clientAuth",
    )  # fmt: skip
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(pki.sa_key),
    )  # fmt: skip
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    for key in (pki.ca_key, pki.server_key, pki.admin_key, pki.sa_key):
        key.chmod(0o600)
    return pki


def tls_context(pki_dir: Path) -> ssl.SSLContext:
    """A client context trusting the run's CA and presenting its admin certificate."""
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx
