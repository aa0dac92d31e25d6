#!/usr/bin/env bash
# Set up the Python venv holding the official client libraries that the end-to-end tests of
# `uma serve` drive (crates/cli/tests/serve_openai.rs runs crates/cli/tests/openai_client.py with
# its interpreter), and the browser the web page's test drives (scripts/setup-browser.sh).
#
#   scripts/setup-test-clients.sh
#
# Idempotent: the venv is created once and the pins of scripts/tests/requirements-clients.txt are
# reinstalled only when that file changes (its sha256 is kept in the venv); otherwise a fast no-op.
# Prints the venv path on stdout at the end.
#
# Environment: UMA_TEST_VENV (default ~/.cache/uma/venv-clients; the Rust test reads the same
# variable), PYTHON (interpreter that creates the venv; default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${UMA_TEST_VENV:-$HOME/.cache/uma/venv-clients}"
req="$here/tests/requirements-clients.txt"

mkdir -p "$(dirname "$venv")"
# Debian splits venv support out of python3; install it where it is missing (CI runs as root or
# with sudo).
if [[ ! -x "$venv/bin/python" ]] && ! "${PYTHON:-python3}" -c 'import ensurepip' 2>/dev/null; then
  sudo=""; if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi
# shellcheck source=golden/venv.sh
source "$here/golden/venv.sh"
ensure_venv "$venv" "$req" .requirements-clients.sha256
"$py" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("openai") is None)' || {
  echo "setup-test-clients: the openai package does not import from $venv" >&2
  exit 1
}
# The web page's browser test (crates/cli/tests/serve_web.rs) drives Debian's chromium with
# playwright: installed where missing.
"$here/setup-browser.sh"
echo "$venv"
