#!/usr/bin/env bash
# System programs the slow tier drives: nginx (the scale-out proof's proxy), Debian's chromium
# and chromedriver (the web page in a real browser). Installed with apt when missing and apt is
# there (as root, or with sudo); elsewhere the tests that need them skip, saying which is missing.
set -euo pipefail
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v unzip >/dev/null || need+=(unzip)  # the README's preview example
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-system-tools: no apt-get; install ${need[*]} yourself for the tests that use them" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "install-system-tools: not root and no sudo; install ${need[*]} yourself" >&2
    exit 0
  fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
