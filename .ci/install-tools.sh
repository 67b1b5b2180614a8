#!/usr/bin/env bash
# Installs the system tools some test groups need: promtool (alert rule unit tests) and the
# prometheus server (the dashboard's queries against a real Prometheus), both from Debian's
# `prometheus` package, and Chromium (browser tests). Idempotent: skips what is already there.
# Called by .ci/run; developers can run it too (needs root for apt-get).
set -euo pipefail

need=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: missing ${need[*]}; run as root to install them with apt-get" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep apt from starting the package's server as a system service: the tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq -o DPkg::Lock::Timeout=300
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null
