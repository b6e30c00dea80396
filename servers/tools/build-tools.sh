#!/usr/bin/env bash
# Builds the manifest tests' tools from the Go module proxy into a versioned cache directory and
# downloads the Go modules whose CRDs the tests read. Idempotent: once the binary exists it only
# prints the bin dir. Prints the bin dir as the last line of stdout.
#
# A kubectl built by servers/cluster/build.sh (it embeds kustomize) is preferred by the tests when
# present; this script exists so the pure manifest tests do not wait for the whole control plane.
#
# Env: BURST_DISPATCHER_CACHE (default ~/.cache/burst-dispatcher).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"

bin="${BURST_DISPATCHER_CACHE:-${HOME}/.cache/burst-dispatcher}/tools/kustomize-${KUSTOMIZE_VERSION}/bin"

command -v go >/dev/null || { echo "build-tools.sh: go is not on PATH" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false"

if [[ ! -x "${bin}/kustomize" ]]; then
  echo "build-tools.sh: building kustomize ${KUSTOMIZE_VERSION}" >&2
  mkdir -p "${bin}"
  # `go install pkg@version` uses the module's own go.mod: reproducible without a wrapper module.
  GOBIN="${bin}" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
fi

# CRD sources: the module zip lands in the module cache, where tools.py finds it.
go mod download "github.com/kedacore/keda/v2@${KEDA_VERSION}" >&2

echo "${bin}"
