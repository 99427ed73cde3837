#!/usr/bin/env bash
# Installs what the workspace needs from nothing but Node and npm: the pinned pnpm (corepack cannot
# download it here), the dependencies from the lockfile, and the built packages.
#
# With BOOTSTRAP_LOG=<file>, only one line per step is printed and the tools' own output goes to that
# file, which is printed if a step fails (the demo uses this). Without it, everything is printed, as CI
# and scripts/test.sh want.
set -euo pipefail
cd "$(dirname "$0")/.."

log=${BOOTSTRAP_LOG:-}
if [ -n "$log" ]; then : >"$log"; fi

# step "what is happening" command args...
step() {
  echo "==> $1"
  shift
  if [ -z "$log" ]; then
    "$@"
    return
  fi
  echo "==> $*" >>"$log"
  local status=0
  "$@" >>"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    echo "failed (exit $status): $*. Its output, from $log:" >&2
    cat "$log" >&2
    exit "$status"
  fi
}

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  step "installing pnpm@$pnpm_version" npm install --global --no-fund --no-audit "pnpm@$pnpm_version"
fi

step "installing dependencies" pnpm install --frozen-lockfile
step "building packages" pnpm build
