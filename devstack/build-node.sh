#!/usr/bin/env bash
# Build the real node's kubelet from the control plane's own module pins into a cache of its own.
#
#   devstack/build-node.sh            build (or reuse) kubelet, print the cache directory last
#   devstack/build-node.sh --print    print the cache directory only (no build)
#
# nodebins/go.mod is a sibling of build.sh's kubebins/go.mod with the same pins: k8s.io/kubernetes,
# the same staging replaces, and the same version of every module both use (checked here and by
# tests/unit/test_devstack_pins.py), so the kubelet is exactly the control plane's version. It is a
# module of its own because kubelet's extra dependencies would add go.sum lines, and perhaps
# requirements, to kubebins: the cache is separate too (node-bins/, not kube-bins/), so build.sh's
# key and contents stay as they are and nobody's control plane is rebuilt for this. No kube-proxy: the chart's pods reach the
# API server on the host network (see qstash_devstack/node.py), so the `kubernetes` Service is
# never routed. Cold: a few minutes on 2 cores (most packages are shared with build.sh's build
# when its Go build cache is warm); warm: nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly
k8s_version=$(cd "$here/nodebins" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
control_plane_version=$(cd "$here/kubebins" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
if [[ "$k8s_version" != "$control_plane_version" ]]; then
  echo "nodebins pins k8s.io/kubernetes $k8s_version, kubebins $control_plane_version: align them" >&2
  exit 1
fi
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
key="kubelet-${k8s_version}_$(go env GOVERSION)_$(go env GOOS)-$(go env GOARCH)"
cache_root=${QSO_NODE_BINS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qstash-operator/node-bins}
out="$cache_root/$key"

if [[ "${1:-}" == "--print" ]]; then
  echo "$out"
  exit 0
fi
if [[ -f "$out/.complete" ]]; then
  printf '==> kubelet cached in %s (nothing to build)\n' "$out" >&2
  echo "$out"
  exit 0
fi

started=$(date +%s)
tmp="$out.partial"
mkdir -p "$tmp"
# The same version stamps as build.sh: the node reports v1.x.y, not v0.0.0-master.
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.gitCommit=unknown -X $p.buildDate=$build_date"
done
printf '==> build kubelet %s\n' "$k8s_version" >&2
(cd "$here/nodebins" && go mod download && go build -trimpath -pgo=off -ldflags "$ldflags" \
  -o "$tmp/" k8s.io/kubernetes/cmd/kubelet)
"$tmp/kubelet" --version >&2
rm -rf "$out"
mv "$tmp" "$out"
touch "$out/.complete"
printf '==> built in %ss into %s\n' "$(($(date +%s) - started))" "$out" >&2
echo "$out"
