/**
 * `pnpm --filter @backpressure/benchmarks report`: regenerates docs/benchmarks.md and its charts from
 * benchmarks/results/latest.json without measuring anything, for changes to the report itself.
 */
import { readFileSync } from 'node:fs'
import type { BenchResults } from './bench.js'
import { writeReport } from './report.js'

const results = JSON.parse(
  readFileSync(new URL('../results/latest.json', import.meta.url), 'utf8'),
) as BenchResults
const written = await writeReport(results)
console.log(`report: ${written.join(', ')}`)
