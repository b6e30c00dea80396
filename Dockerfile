# burst-dispatcher image: one CLI (`dispatcher`), used by the Deployment (`dispatcher run`) and
# by the order-pipeline exit handler (`dispatcher report`).
#
# Base image pinned by exact version; pin the digest too when releasing:
#   python:3.11.14-slim-bookworm@sha256:<digest>   # digest: fill from `docker buildx imagetools inspect`
# Every FROM below must stay an exact version (tests/manifests/test_dockerfile.py).

# --- build: the wheel and a virtualenv with pinned runtime dependencies ---------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Build backend pinned (pyproject's build-system says setuptools>=77); no build isolation so the
# pinned one is what builds the wheel.
RUN pip install --no-cache-dir "setuptools==80.9.0" "wheel==0.45.1"
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# Direct dependencies pinned to the versions the test suite runs against. Replace with a lock
# file (hashes, transitive pins) once the repository has one.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir \
      /wheels/burst_dispatcher-*.whl \
      "google-cloud-pubsub==2.44.0" \
      "kubernetes==35.0.0" \
      "tenacity==9.2.1" \
      "structlog==25.5.0" \
      "pydantic==2.14.4" \
      "PyYAML==6.0.4" \
      "click==8.5.1" \
      "rich==14.3.4" \
      "prometheus-client==0.26.0" \
      "ruamel.yaml==0.18.17"

# --- runtime: slim, no compilers, no pip cache, no source tree ----------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="burst-dispatcher" \
      org.opencontainers.image.description="Pub/Sub orders to batched, rate-limited Argo Workflows on GKE" \
      org.opencontainers.image.licenses="Apache-2.0"

# Numeric uid/gid, matching the Deployment's runAsUser, so runAsNonRoot can be verified by the
# kubelet without reading /etc/passwd.
RUN groupadd --system --gid 10001 dispatcher \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp dispatcher

COPY --from=builder /opt/venv /opt/venv

# HOME=/tmp: the root filesystem is read-only in the cluster; /tmp is an emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
EXPOSE 8080

# Health: no HEALTHCHECK (Kubernetes ignores it, and the same image runs one-shot commands);
# the Deployment's probes call GET /healthz (liveness) and GET /readyz (readiness) on port 8080.
ENTRYPOINT ["dispatcher"]
CMD ["--help"]
