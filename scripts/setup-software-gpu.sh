#!/usr/bin/env bash
# Make sure the GPU tests have a GPU: on Linux without a Vulkan driver, install Mesa's software
# Vulkan device (lavapipe, Debian's mesa-vulkan-drivers), on which wgpu runs every GPU kernel
# for correctness (never for speed). Machines with a GPU driver (and macOS, with Metal) are left
# as they are.
#
#   scripts/setup-software-gpu.sh
#
# Idempotent: a no-op once a Vulkan driver is installed.
set -euo pipefail

if [[ "$(uname -s)" != "Linux" ]]; then
  exit 0
fi
if compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "no Vulkan driver found; install your distribution's Mesa Vulkan drivers (lavapipe) to run the GPU tests" >&2
  exit 0
fi
sudo=""; if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
# The install upgrades other Mesa packages; no validation layers (old ones reject naga's SPIR-V).
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
echo "installed Mesa's software Vulkan device (lavapipe) for the GPU tests"
