#!/usr/bin/env bash
# Installs everything from nothing and runs the overload demo: the README's main-job command.
# The install and build print one line per step; their full output goes to a log file, shown on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${BOOTSTRAP_LOG:-${TMPDIR:-/tmp}/backpressure-demo-setup.log}
echo "Setting up: pnpm, dependencies and a build (about a minute the first time; log: $log)"
BOOTSTRAP_LOG="$log" bash scripts/bootstrap.sh
echo
pnpm --silent demo
