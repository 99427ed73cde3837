#!/usr/bin/env bash
# Installs everything from nothing and runs every test: the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/bootstrap.sh
echo "==> running tests"
pnpm test
