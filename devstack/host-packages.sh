#!/usr/bin/env bash
# Install the Debian packages the image and real-node tests need, when any is missing.
#
#   devstack/host-packages.sh          install what is missing (quiet; nothing to do when present)
#   devstack/host-packages.sh --check  exit 1, naming them, if any is missing (installs nothing)
#
# podman builds and runs the image (runc, not crun: crun refuses this machine's cgroup v1/v2
# hybrid); debootstrap makes its base; containerd (Debian's 1.6, with its CRI plugin) and
# containernetworking-plugins (bridge, host-local, loopback) are the real node's runtime and
# network; catatonit and busybox-static become the node's pause and job images; iproute2 makes the
# node's bridge. All from Debian's archive through apt, as on a fresh machine.
set -euo pipefail

PACKAGES=(podman runc containerd containernetworking-plugins debootstrap catatonit busybox-static
  iproute2)

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$package")
done
((${#missing[@]})) || exit 0

if [[ "${1:-}" == "--check" ]]; then
  echo "missing Debian packages: ${missing[*]} (run devstack/host-packages.sh)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
printf '==> apt-get install %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
