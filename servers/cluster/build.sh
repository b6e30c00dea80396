#!/usr/bin/env bash
# Builds the local test cluster's binaries (Kubernetes control plane + kubectl, etcd, kwok, Argo
# workflow-controller, argolint) from the Go module proxy, CGO_ENABLED=0, into a cache directory
# keyed by the pinned versions. Idempotent: when the binaries for the current key exist it only
# prints the bin dir. Prints the bin dir as the last line of stdout.
#
# Besides bin/, share/ gets the module-shipped manifests the cluster needs at run time: Argo's
# CRDs (manifests/base/crds/minimal, what Argo's own install uses) and kwok's default stages.
#
# Usage: build.sh            build if needed; print the bin dir
#        build.sh --print    print the bin dir if everything is built, else exit 3 (never builds)
# Env: BURST_DISPATCHER_CACHE (default ~/.cache/burst-dispatcher), BUILD_JOBS (go build -p).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"
# shellcheck source=../lib.sh
source "${here}/../lib.sh"

cache_root="${BURST_DISPATCHER_CACHE:-${HOME}/.cache/burst-dispatcher}/cluster"
key="k8s-${K8S_VERSION}-$(cache_key "${here}/versions.env" \
  "${here}"/{k8s,etcd,kwok,argolint}/go.mod "${here}"/{k8s,etcd,kwok,argolint}/go.sum \
  "${here}"/argolint/*.go)"
bin="${cache_root}/${key}/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok
  workflow-controller argolint)

share="${cache_root}/${key}/share"

all_built() {
  local b
  for b in "${binaries[@]}"; do [[ -x "${bin}/${b}" ]] || return 1; done
  [[ -f "${share}/complete" ]]
}

if all_built; then
  echo "${bin}"
  exit 0
fi
if [[ "${1:-}" == "--print" ]]; then
  echo "build.sh: not built yet (expected ${bin}); run: bash servers/cluster/build.sh" >&2
  exit 3
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }

require_pin "${here}/k8s/go.mod" k8s.io/kubernetes "${K8S_VERSION}"
require_pin "${here}/etcd/go.mod" go.etcd.io/etcd/server/v3 "${ETCD_VERSION}"
require_pin "${here}/kwok/go.mod" sigs.k8s.io/kwok "${KWOK_VERSION}"
require_pin "${here}/argolint/go.mod" github.com/argoproj/argo-workflows/v4 "${ARGO_VERSION}"
if grep -E '=> k8s.io/' "${here}/k8s/go.mod" | grep -vq " ${K8S_STAGING_VERSION}\$"; then
  echo "build.sh: k8s/go.mod replace block is not all ${K8S_STAGING_VERSION}" >&2
  exit 1
fi

export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local
jobs=(-p "${BUILD_JOBS:-$(nproc)}")
tmp="${cache_root}/${key}/bin.tmp"
mkdir -p "${tmp}" "${bin}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
start=$(date +%s)

# Kubernetes: version ldflags as in hack/lib/version.sh, so /version reports the real version.
k8s_major="${K8S_VERSION#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${K8S_VERSION#v*.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${k8s_major}"
  k8s_ldflags+=" -X ${pkg}.gitMinor=${k8s_minor} -X ${pkg}.gitTreeState=clean"
  k8s_ldflags+=" -X ${pkg}.buildDate=${build_date}"
done

build() { # module-dir output-name package ldflags
  local mod="$1" out="$2" pkg="$3" ldflags="$4"
  if [[ -x "${bin}/${out}" ]]; then return 0; fi
  log "building ${out} (${pkg})"
  (cd "${here}/${mod}" && go build "${jobs[@]}" -trimpath -ldflags "${ldflags}" \
    -o "${tmp}/${out}.partial" "${pkg}")
  mv "${tmp}/${out}.partial" "${bin}/${out}"
}

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build k8s "${cmd}" "k8s.io/kubernetes/cmd/${cmd}" "${k8s_ldflags}"
done
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w"
argo_pkg=github.com/argoproj/argo-workflows/v4
build argolint workflow-controller "${argo_pkg}/cmd/workflow-controller" \
  "-s -w -X ${argo_pkg}.version=${ARGO_VERSION} -X ${argo_pkg}.gitTag=${ARGO_VERSION} -X ${argo_pkg}.buildDate=${build_date} -X ${argo_pkg}.gitTreeState=clean"
build argolint argolint . "-s -w"

rm -rf "${tmp}"

# Manifests shipped inside the modules (read-only in the module cache; copied so the cluster
# tool needs only this directory at run time).
gomodcache="$(go env GOMODCACHE)"
argo_dir="$(cd "${here}/argolint" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-workflows/v4)"
kwok_dir="$(cd "${here}/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
[[ -n "${gomodcache}" && -d "${argo_dir}" && -d "${kwok_dir}" ]]
rm -rf "${share}"
mkdir -p "${share}/argo-crds" "${share}/kwok-stages" "${share}/argo-rbac"
cp "${argo_dir}"/manifests/base/crds/minimal/argoproj.io_*.yaml "${share}/argo-crds/"
# The controller's own identity (dispatcher/local/argo_rbac.py): Argo's cluster-install RBAC.
cp "${argo_dir}"/manifests/base/workflow-controller/workflow-controller-sa.yaml \
  "${argo_dir}"/manifests/cluster-install-no-crds/workflow-controller-rbac/workflow-controller-{clusterrole,clusterrolebinding,role,rolebinding}.yaml \
  "${share}/argo-rbac/"
stages="${kwok_dir}/kustomize/stage"
cp "${stages}/node/fast/node-initialize.yaml" \
  "${stages}/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
  "${stages}/pod/fast/pod-ready.yaml" "${stages}/pod/fast/pod-delete.yaml" "${share}/kwok-stages/"
chmod -R u+w "${share}"
touch "${share}/complete"
log "done in $(( $(date +%s) - start ))s"
echo "${bin}"
