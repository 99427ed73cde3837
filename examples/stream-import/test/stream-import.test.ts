import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BackpressureController } from '@backpressure/core'
import { afterEach, expect, it } from 'vitest'
import { importCsv } from '../src/import.js'
import { main } from '../src/main.js'
import { SlowDatabase } from '../src/slow-database.js'

// Keeps the example from rotting: the whole file arrives once, never more at once than the limit, and
// a bad row ends the import with an error naming its line.

let dir: string | undefined
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

it('imports every row once, the database never busier than its pool, and prints its progress', async () => {
  const lines: string[] = []
  const db = await main(3000, (line) => lines.push(line))
  expect(db.rows.size).toBe(3000)
  expect(db.rows.get(3000)).toBe('customer-3000')
  expect(db.maxBusy).toBeLessThanOrEqual(8)
  expect(lines[0]).toMatch(/^importing 3000 rows/)
  expect(lines.at(-1)).toMatch(/^imported 3000 rows in/)
})

it('stops at a malformed row with an error naming its line, after the inserts in flight', async () => {
  dir = await mkdtemp(join(tmpdir(), 'stream-import-test-'))
  const file = join(dir, 'bad.csv')
  const good = Array.from({ length: 50 }, (_, i) => `${i + 1},customer-${i + 1}`)
  await writeFile(file, ['id,name', ...good, 'oops', ...good].join('\n'))
  const db = new SlowDatabase(4, 1)
  const controller = new BackpressureController({ maxConcurrency: 4 })
  await expect(importCsv(file, controller, db)).rejects.toThrow('line 52: expected "id,name", got "oops"')
  expect(controller.inFlight).toBe(0)
  expect(db.rows.size).toBeLessThanOrEqual(50)
})
