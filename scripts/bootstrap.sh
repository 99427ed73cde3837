#!/usr/bin/env bash
# Installs what the workspace needs from nothing but Node and npm: the pinned pnpm (corepack cannot
# download it here), the dependencies from the lockfile, and the built packages.
set -euo pipefail
cd "$(dirname "$0")/.."

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "==> installing pnpm@$pnpm_version"
  npm install --global --no-fund --no-audit "pnpm@$pnpm_version"
fi

echo "==> installing dependencies"
pnpm install --frozen-lockfile
echo "==> building packages"
pnpm build
