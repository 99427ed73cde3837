#!/usr/bin/env bash
# Installs everything from nothing and runs the overload demo: the README's main-job command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
pnpm demo
