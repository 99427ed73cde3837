/**
 * `pnpm --filter @backpressure/example-stream-import start [rows]`: writes a CSV file of `rows` rows
 * (default 20,000) to a temporary directory, imports it into a simulated slow database (8 connections,
 * 5 ms per insert) through `controller.writable()`, and prints its progress every second.
 */

import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BackpressureController } from '@backpressure/core'
import { importCsv } from './import.js'
import { SlowDatabase } from './slow-database.js'

export async function writeCsv(file: string, rows: number): Promise<void> {
  const out = createWriteStream(file)
  out.write('id,name\n')
  for (let id = 1; id <= rows; id++) {
    // Respect the file stream's own backpressure too: wait when its buffer is full.
    if (!out.write(`${id},customer-${id}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

export async function main(rows: number, print: (line: string) => void = console.log): Promise<SlowDatabase> {
  const dir = await mkdtemp(join(tmpdir(), 'stream-import-'))
  try {
    const file = join(dir, 'customers.csv')
    await writeCsv(file, rows)
    const db = new SlowDatabase(8, 5)
    // The default controller: an adaptive limit, which finds how many inserts the database takes at once.
    const controller = new BackpressureController()
    print(
      `importing ${rows} rows (${((await stat(file)).size / 2 ** 20).toFixed(1)} MiB) into a database of ${db.connections} connections × ${db.insertMs} ms`,
    )
    const began = performance.now()
    let last = 0
    const progress = setInterval(() => {
      const done = db.rows.size
      print(
        `${String(done).padStart(7)} rows  ${String(done - last).padStart(5)} rows/s  in flight ${controller.inFlight} (limit ${controller.limit})  waiting in the pool ${db.queued}  RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`,
      )
      last = done
    }, 1000)
    try {
      await importCsv(file, controller, db)
    } finally {
      clearInterval(progress)
    }
    const seconds = (performance.now() - began) / 1000
    print(
      `imported ${db.rows.size} rows in ${seconds.toFixed(1)} s (${Math.round(db.rows.size / seconds)} rows/s; the database takes at most ${Math.round((db.connections * 1000) / db.insertMs)}/s), never more than ${db.maxBusy} connections busy`,
    )
    await controller.close()
    return db
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = Number(process.argv[2] ?? 20_000)
  if (!Number.isInteger(rows) || rows < 1)
    throw new Error(`rows must be a whole number from 1, got ${process.argv[2]}`)
  await main(rows)
}
