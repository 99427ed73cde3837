import type { Options } from 'tsup'

// Every package ships ESM and CommonJS with declarations for both, so `import` and `require` consumers
// get the same types.
export const packageBuild: Options = {
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
}
