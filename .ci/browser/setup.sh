#!/usr/bin/env bash
# Install Debian's headless-capable chromium for the leaderboard page test (tests/test_report_html.py).
#
#   sudo bash .ci/browser/setup.sh     # idempotent: a second run reports "already installed"
#
# Only the distribution package is used (no browser download); without root or apt-get it says so
# and exits 0, and the browser test is then skipped with that reason.
set -euo pipefail

say() { echo "[browser-setup] $*"; }

if command -v chromium >/dev/null 2>&1; then
    say "already installed: $(chromium --version 2>/dev/null || echo chromium)"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "not installing chromium (needs root and apt-get); the headless-browser test will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
say "installed: $(chromium --version)"
