#!/usr/bin/env bash
# Build the local Kubernetes control plane from Go modules into a cache keyed by versions.
#
#   devstack/build.sh            build (or reuse) the binaries, print the cache directory last
#   devstack/build.sh --print    print the cache directory only (no build)
#
# Nothing here downloads a release binary: every binary is compiled from the Go module proxy.
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl come from the wrapper module
# in kubebins/ (k8s.io/kubernetes plus the staging-module replaces it needs, see
# ../shared/reference/local-control-plane.md section 1); etcd from etcdbin/ (kept apart so minimal
# version selection cannot merge its grpc/otel versions with Kubernetes'); helm and kwok by
# `go install module@version` (neither has replace directives).
#
# The cache is complete only when `.complete` exists; it is written last, so an interrupted build is
# simply redone. Re-running with a warm cache costs nothing.
set -euo pipefail

K8S_VERSION=v1.36.3   # k8s.io/kubernetes; staging modules follow as v0.36.3 (kubebins/go.mod)
K8S_MINOR=36
ETCD_VERSION=v3.6.16  # go.etcd.io/etcd/server/v3 (etcdbin/go.mod)
HELM_VERSION=v3.22.0  # helm.sh/helm/v3, newest accepted on go1.26
KWOK_VERSION=v0.8.0   # sigs.k8s.io/kwok, so Job pods are "run" by a fake node

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly
go_version=$(go env GOVERSION)
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_kwok-${KWOK_VERSION}_${go_version}_$(go env GOOS)-$(go env GOARCH)"
cache_root=${QSO_KUBE_BINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qstash-operator/kube-bins}
out="$cache_root/$key"

if [[ "${1:-}" == "--print" ]]; then
  echo "$out"
  exit 0
fi

step_start=0
step() { step_start=$(date +%s); printf '==> %s\n' "$*" >&2; }
done_step() { printf '    done in %ss\n' "$(( $(date +%s) - step_start ))" >&2; }

if [[ -f "$out/.complete" ]]; then
  printf '==> control plane binaries cached in %s (nothing to build)\n' "$out" >&2
  echo "$out"
  exit 0
fi

total_start=$(date +%s)
tmp="$out.partial"
mkdir -p "$tmp"

# Version information: module zips carry no git metadata, so without these -X flags /version reports
# v0.0.0-master and helm's .Capabilities.KubeVersion breaks (local-control-plane.md, pitfall 1).
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
  ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit=unknown -X $p.buildDate=$build_date"
done

step "download modules for k8s.io/kubernetes $K8S_VERSION"
(cd "$here/kubebins" && go mod download)
done_step

# -pgo=off: kube-apiserver ships a default.pgo that would otherwise make the shared packages compile
# twice (once per main package); with it off the four binaries share one compile.
step "build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (the long step)"
(cd "$here/kubebins" && go build -trimpath -pgo=off -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
done_step

step "build etcd $ETCD_VERSION"
(cd "$here/etcdbin" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
done_step

step "build helm $HELM_VERSION"
GOFLAGS= GOBIN="$tmp" go install -trimpath -ldflags "-s -w \
  -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
done_step

step "build kwok $KWOK_VERSION"
GOFLAGS= GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
done_step

step "check the binaries answer"
"$tmp/kube-apiserver" --version >&2
"$tmp/kubectl" version --client >&2
"$tmp/etcd" --version | sed -n 1p >&2  # sed reads it all: head would exit early and SIGPIPE (141) fails the build under pipefail
"$tmp/helm" version --short >&2
"$tmp/kwok" --version >&2 || true
done_step

rm -rf "$out"
mv "$tmp" "$out"
touch "$out/.complete"
printf '==> built in %ss into %s\n' "$(( $(date +%s) - total_start ))" "$out" >&2
du -sh "$out"/* >&2
echo "$out"
