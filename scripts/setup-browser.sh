#!/usr/bin/env bash
# Make sure the web page's end-to-end test (crates/cli/tests/serve_web.rs) has a browser: Debian's
# `chromium`, which `playwright` (pinned in scripts/tests/requirements-clients.txt) drives
# headless. Playwright's own browser downloads are never used: the test points it at
# `command -v chromium`.
#
#   scripts/setup-browser.sh
#
# Idempotent: a no-op once `chromium` is on the PATH (or on macOS, where the test looks for
# Chrome itself). UMA_BROWSER names another Chromium-based browser to use instead.
set -euo pipefail

if [[ -n "${UMA_BROWSER:-}" ]] || command -v chromium >/dev/null; then
  exit 0
fi
if [[ "$(uname -s)" != "Linux" ]] || ! command -v apt-get >/dev/null; then
  echo "no chromium found: install Chromium (or set UMA_BROWSER to a Chromium-based browser) to run the web page's browser test" >&2
  exit 0
fi
sudo=""; if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
# Fonts so that screenshots show text; the rest comes as chromium's dependencies.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
echo "installed Debian's chromium for the web page's browser test" >&2
