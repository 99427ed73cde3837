import { createReadStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import type { BackpressureController } from '@backpressure/core'
import type { SlowDatabase } from './slow-database.js'

export interface Row {
  readonly line: number
  readonly id: number
  readonly name: string
}

/**
 * Splits a byte stream into CSV rows `id,name` (no quoting: the file is ours), skipping the header.
 * A malformed row throws, which ends the pipeline with that error.
 */
export async function* csvRows(source: AsyncIterable<Buffer>): AsyncGenerator<Row> {
  let rest = ''
  let line = 0
  for await (const chunk of source) {
    const lines = (rest + chunk.toString('utf8')).split('\n')
    rest = lines.pop()!
    for (const text of lines) {
      line++
      if (line === 1 || text === '') continue
      yield parse(text, line)
    }
  }
  if (rest !== '') yield parse(rest, line + 1)
}

function parse(text: string, line: number): Row {
  const comma = text.indexOf(',')
  const id = Number(text.slice(0, comma))
  if (comma === -1 || !Number.isInteger(id))
    throw new Error(`line ${line}: expected "id,name", got ${JSON.stringify(text)}`)
  return { line, id, name: text.slice(comma + 1) }
}

/**
 * Imports `file` into `db`: the file is read only as fast as the controller admits rows (up to its
 * limit at once), so memory holds a few chunks, not the file. An insert that fails ends the import with
 * its error, after the inserts in flight have been aborted and awaited.
 */
export async function importCsv(
  file: string,
  controller: BackpressureController,
  db: SlowDatabase,
): Promise<void> {
  await pipeline(
    createReadStream(file),
    csvRows,
    controller.writable((row: Row, signal) => db.insert(row.id, row.name, signal)),
  )
}
