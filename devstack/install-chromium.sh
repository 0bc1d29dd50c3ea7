#!/usr/bin/env bash
# Debian's chromium for the console's browser tests (Playwright drives it by executable_path; no
# tool downloads a browser). Idempotent: does nothing when /usr/bin/chromium is there. Needs root
# (CI runs as root) or sudo; apt-get reaches Debian's package mirror only.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-chromium.sh: no apt-get; install Chromium and set QSTASH_CHROMIUM to its path" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
echo "installing Debian's chromium for the browser tests (once)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
