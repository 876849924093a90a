#!/usr/bin/env bash
# Installs what the browser test of the admin page needs: Debian's Chromium, and
# playwright-core (pinned in tests/browser/package-lock.json) to drive it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "Installing playwright-core ..." >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
