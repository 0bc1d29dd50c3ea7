#!/usr/bin/env bash
# Build the project's Dockerfile without a Docker engine or a registry: podman (runc) on a Python
# base image made here with debootstrap. Every step is cached by its inputs.
#
#   devstack/image.sh            the product image; prints its reference last
#   devstack/image.sh base       only the base image (debootstrap bookworm + python3)
#   devstack/image.sh extras     the node's helper images: pause (catatonit -P) and a busybox job
#                                image; prints "pause=<ref>" and "job=<ref>"
#   devstack/image.sh --print    the product image's reference, building nothing
#
# What differs from a user's `docker build -t qstash-operator:0.1.0 .`, and nothing else:
# - `--build-arg PYTHON_IMAGE=<the local base>`: no registry is reachable, so python:3.11-slim
#   cannot be pulled; the base is Debian bookworm's own python3 (3.11) with a `python` symlink,
#   which is what the Dockerfile's `python -m venv` expects of an official Python image;
# - the build runs on the host network with the host's CA bundle bind-mounted read-only over the
#   base's, so pip reaches PyPI through this machine's TLS setup. A bind mount is never part of a
#   layer: the image keeps Debian's bundle (tests/packaging/test_image.py checks);
# - `--runtime runc` and ulimits at or below the host's: crun refuses this machine's cgroup
#   v1/v2 hybrid, and without CAP_SYS_RESOURCE a container cannot raise a limit above the host's.
# Nothing here uses podman's default network (a bridge, iptables rules, IP forwarding on): builds
# run on the host network or none.
#
# Caches: the base's root filesystem as a tarball in ~/.cache/qstash-operator/image-base/<key>/
# (key: suite, package list and this recipe's version), imported into podman on demand; the
# product image is tagged `src-<hash of the build context and the base>`, so an unchanged tree
# costs one `podman image exists`, and a changed one reuses podman's layer cache. Heavy work:
# run it under `flock /tmp/qso-heavy.lock` on a shared machine (the tests call it warm).
set -euo pipefail

SUITE=bookworm
MIRROR=${QSO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=(python3 python3-venv ca-certificates tzdata)
BASE_RECIPE=3 # bump when the post-debootstrap steps below change: it is part of the cache key
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
IMAGE_REPO=localhost/qstash-operator
BASE_REPO=localhost/qstash-operator-base
KEEP_TAGS=4 # product images kept per machine (the newest); older src-* tags are removed

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache_root=${QSO_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qstash-operator}
podman=(podman --runtime runc --cgroup-manager cgroupfs --events-backend file)

log() { printf '==> %s\n' "$*" >&2; }
short_hash() { sha256sum | cut -c1-12; }

base_key=$(printf '%s\n' "suite=$SUITE" "recipe=$BASE_RECIPE" "${BASE_PACKAGES[@]}" | short_hash)
base_ref="$BASE_REPO:$SUITE-$base_key"

# The build context, as .dockerignore lets it through (pinned by tests/packaging): the files the
# Dockerfile copies, without bytecode or egg-info, plus the Dockerfile and the base.
context_hash() {
  (
    cd "$repo"
    {
      printf '%s\n' "$base_ref"
      find Dockerfile .dockerignore pyproject.toml README.md operator webhook qstash-server \
        -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum
    } | short_hash
  )
}

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (devstack/host-packages.sh installs them)" >&2
    exit 1
  fi
}

ensure_base() {
  if "${podman[@]}" image exists "$base_ref"; then
    return
  fi
  local dir="$cache_root/image-base/$SUITE-$base_key"
  if [[ ! -f "$dir/.complete" ]]; then
    need debootstrap
    local started=$SECONDS root="$dir.partial/rootfs"
    log "debootstrap $SUITE with ${BASE_PACKAGES[*]} (cold: about a minute)"
    rm -rf "$dir.partial"
    mkdir -p "$root"
    # debootstrap mounts /proc and /sys inside the target; leave nothing mounted on failure.
    trap 'umount -R "'"$root"'/proc" "'"$root"'/sys" 2>/dev/null || true' EXIT
    local packages
    packages=$(IFS=,; echo "${BASE_PACKAGES[*]}")
    if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$root" "$MIRROR" \
      >"$dir.partial/debootstrap.log" 2>&1; then
      tail -30 "$dir.partial/debootstrap.log" >&2
      exit 1
    fi
    # An official Python image has `python` on PATH; Debian has only python3.
    ln -s python3 "$root/usr/bin/python"
    # What a slim image leaves out, and what debootstrap copied from this host. The runtime
    # mounts its own /etc/hosts, hostname and resolv.conf, and links /etc/mtab when missing:
    # having them keeps every container from changing /etc (the image test diffs a container).
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    for file in hosts hostname resolv.conf machine-id; do : >"$root/etc/$file"; done
    [[ -e "$root/etc/mtab" ]] || ln -s /proc/mounts "$root/etc/mtab"
    tar --numeric-owner --sort=name -C "$root" -cf "$dir.partial/rootfs.tar" \
      --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* .
    rm -rf "$root"
    trap - EXIT
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    touch "$dir/.complete"
    log "base root filesystem built in $((SECONDS - started))s: $dir/rootfs.tar"
  fi
  "${podman[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$dir/rootfs.tar" "$base_ref" >/dev/null
  log "base image imported: $base_ref"
}

prune_old_tags() {
  "${podman[@]}" images --noheading --sort created --format '{{.Repository}}:{{.Tag}}' \
    --filter "reference=$IMAGE_REPO:src-*" | tail -n +"$((KEEP_TAGS + 1))" |
    while read -r old; do "${podman[@]}" rmi --force "$old" >/dev/null 2>&1 || true; done
  # Untagged builder stages: their venv layer changes with every source change anyway (COPY comes
  # before pip install), so keeping them would only fill the disk.
  "${podman[@]}" image prune --force >/dev/null 2>&1 || true
}

build_product() {
  local ref="$IMAGE_REPO:src-$(context_hash)"
  if "${podman[@]}" image exists "$ref"; then
    log "image $ref is current (nothing to build)"
    echo "$ref"
    return
  fi
  ensure_base
  local started=$SECONDS
  log "podman build --build-arg PYTHON_IMAGE=$base_ref -t $ref"
  if ! "${podman[@]}" build --quiet --network host "${ULIMITS[@]}" \
    --volume "$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro" \
    --build-arg "PYTHON_IMAGE=$base_ref" --tag "$ref" --file "$repo/Dockerfile" "$repo" \
    >"$cache_root/image-build.log" 2>&1; then
    tail -40 "$cache_root/image-build.log" >&2
    exit 1
  fi
  local size
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$ref")
  log "built in $((SECONDS - started))s, $((size / 1000000)) MB: $ref"
  prune_old_tags
  echo "$ref"
}

# The node's two helper images, FROM scratch with one static binary each, from Debian packages:
# pause: catatonit in pause mode (podman's own infra-container process); job: busybox.
build_extras() {
  need /usr/bin/catatonit /bin/busybox
  local key ctx ref_pause ref_job
  key=$( (dpkg-query -W catatonit busybox-static; echo recipe=1) | short_hash)
  ref_pause="localhost/qstash-operator-pause:$key"
  ref_job="localhost/qstash-operator-job:$key"
  if ! "${podman[@]}" image exists "$ref_pause" || ! "${podman[@]}" image exists "$ref_job"; then
    ctx=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    cp /usr/bin/catatonit /bin/busybox "$ctx/"
    printf '%s\n' 'FROM scratch' 'COPY catatonit /pause' 'USER 65535:65535' \
      'ENTRYPOINT ["/pause", "-P"]' >"$ctx/Containerfile.pause"
    printf '%s\n' 'FROM scratch' 'COPY busybox /bin/busybox' \
      'ENTRYPOINT ["/bin/busybox"]' 'CMD ["true"]' >"$ctx/Containerfile.job"
    "${podman[@]}" build --quiet --network none "${ULIMITS[@]}" -t "$ref_pause" -f "$ctx/Containerfile.pause" \
      "$ctx" >/dev/null
    "${podman[@]}" build --quiet --network none "${ULIMITS[@]}" -t "$ref_job" -f "$ctx/Containerfile.job" \
      "$ctx" >/dev/null
    log "built $ref_pause and $ref_job"
  fi
  echo "pause=$ref_pause"
  echo "job=$ref_job"
}

need podman runc
mkdir -p "$cache_root"
case "${1:-}" in
  --print) echo "$IMAGE_REPO:src-$(context_hash)" ;;
  base) ensure_base && echo "$base_ref" ;;
  extras) build_extras ;;
  "") build_product ;;
  *) echo "usage: $0 [--print|base|extras]" >&2; exit 2 ;;
esac
