import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// The pack test alone (`pnpm test:pack`), apart from the main suite: it needs the built packages and
// npm install from the registry, and takes a minute or so of both cores.
export default defineConfig({
  root: fileURLToPath(new URL('../', import.meta.url)),
  test: {
    include: ['release/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
})
