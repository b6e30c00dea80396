#!/usr/bin/env bash
# Builds the test cluster's autoscaler, Karpenter's kwok cloud provider (`sigs.k8s.io/karpenter/kwok`),
# from the Go module proxy, CGO_ENABLED=0, into a cache directory keyed by the pinned version,
# go.mod and go.sum. Idempotent: when the binary for the current key exists it only prints the bin
# dir. Prints the bin dir as the last line of stdout.
#
# Besides bin/karpenter-kwok, share/crds gets the CRDs that ship in the module: Karpenter's own
# (NodePool, NodeClaim, NodeOverlay, CapacityBuffer; kwok/charts/crds, what its chart installs) and
# the kwok provider's KWOKNodeClass (kwok/apis/crds).
#
# Karpenter needs a newer Go than the machine's: GOTOOLCHAIN (versions.env) makes the go command
# fetch that approved toolchain from the Go module proxy the first time (~76 MB, ~10 s).
#
# Usage: build.sh            build if needed; print the bin dir
#        build.sh --print    print the bin dir if built, else exit 3 (never builds)
# Env: BURST_DISPATCHER_CACHE (default ~/.cache/burst-dispatcher), BUILD_JOBS (go build -p).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"
# shellcheck source=../lib.sh
source "${here}/../lib.sh"

cache_root="${BURST_DISPATCHER_CACHE:-${HOME}/.cache/burst-dispatcher}/autoscaler"
key="karpenter-${KARPENTER_VERSION}-$(cache_key "${here}"/{versions.env,go.mod,go.sum})"
bin="${cache_root}/${key}/bin"
share="${cache_root}/${key}/share"

if [[ -x "${bin}/karpenter-kwok" && -f "${share}/complete" ]]; then
  echo "${bin}"
  exit 0
fi
if [[ "${1:-}" == "--print" ]]; then
  echo "build.sh: autoscaler not built yet (expected ${bin}); run: bash servers/autoscaler/build.sh" >&2
  exit 3
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }
require_pin "${here}/go.mod" sigs.k8s.io/karpenter "${KARPENTER_VERSION}"

export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN="${GO_TOOLCHAIN}"
start=$(date +%s)
mkdir -p "${bin}"
if [[ ! -x "${bin}/karpenter-kwok" ]]; then
  log "building karpenter-kwok (sigs.k8s.io/karpenter/kwok ${KARPENTER_VERSION}, ${GO_TOOLCHAIN})"
  (cd "${here}" && go build -p "${BUILD_JOBS:-$(nproc)}" -trimpath -ldflags "-s -w" \
    -o "${bin}/karpenter-kwok.partial" sigs.k8s.io/karpenter/kwok)
  mv "${bin}/karpenter-kwok.partial" "${bin}/karpenter-kwok"
fi

# CRDs shipped inside the module (read-only in the module cache; copied so the cluster tool needs
# only this directory at run time).
karpenter_dir="$(cd "${here}" && go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)"
[[ -d "${karpenter_dir}" ]]
rm -rf "${share}"
mkdir -p "${share}/crds"
cp "${karpenter_dir}"/kwok/charts/crds/*.yaml "${karpenter_dir}"/kwok/apis/crds/*.yaml "${share}/crds/"
chmod -R u+w "${share}"
touch "${share}/complete"
log "done in $(( $(date +%s) - start ))s"
echo "${bin}"
