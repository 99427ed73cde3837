import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/** The committed report, as `pnpm --filter @backpressure/benchmarks report` writes it. */
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url))
const page = readFileSync(`${DOCS}benchmarks.md`, 'utf8')
const charts = readdirSync(DOCS).filter((f) => /^benchmarks-.*\.svg$/.test(f))

/** GitHub's heading anchors: lower case, punctuation and symbols dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const [, heading] of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = heading!
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(slug) ?? 0
    seen.set(slug, n + 1)
    out.add(n === 0 ? slug : `${slug}-${n}`)
  }
  return out
}

/** The rows of the targets table, each split into its cells. */
function targetRows(): { cells: string[]; status: string }[] {
  const section = page.slice(page.indexOf("## Against the project's targets"))
  const lines = section.split('\n').filter((l) => l.startsWith('|'))
  const head = lines[0]!.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '').trim())
  const statusAt = head.indexOf('status')
  return lines.slice(2).map((line) => {
    const cells = line.split(' | ')
    return { cells, status: cells[statusAt] ?? '' }
  })
}

describe('the benchmarks report stands alone', () => {
  it('has the charts it embeds', () => {
    expect(charts.length).toBeGreaterThan(0)
    for (const [, file] of page.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)) expect(charts).toContain(file)
  })

  for (const file of ['benchmarks.md', ...charts]) {
    it(`${file} names nothing a reader of this repository cannot look up`, () => {
      const text = readFileSync(`${DOCS}${file}`, 'utf8')
      // DESIGN.md by its capitalised name; "design" itself is fine ("the reference design").
      expect(text.match(/\bDESIGN\b/g)).toBeNull()
      expect(text.match(/§\s*\d|\bseed\b|the issue/gi)).toBeNull()
    })
  }
})

describe('the targets table', () => {
  const rows = targetRows()

  it('gives every target a status', () => {
    expect(rows.length).toBeGreaterThan(10)
    for (const row of rows) expect(row.status).toMatch(/^(met|\*\*missed\*\*: \[why\]\([^)]+\)|–)$/)
  })

  it('links every missed target to a section that exists', () => {
    const here = anchors(page)
    const adaptive = anchors(readFileSync(`${DOCS}adaptive-limit.md`, 'utf8'))
    const missed = rows.filter((r) => r.status.includes('missed'))
    expect(missed.length).toBeGreaterThan(0)
    for (const row of missed) {
      const link = row.status.match(/\]\(([^)]+)\)/)?.[1]
      expect(link, row.cells[0]).toBeDefined()
      const [file, hash] = link!.split('#')
      if (file === '') expect(here, link).toContain(hash)
      else {
        expect(file).toBe('adaptive-limit.md')
        expect(adaptive, link).toContain(hash)
      }
    }
  })

  it('puts the unit of the best other system right after its figure', () => {
    expect(page).not.toMatch(/\d \([^)]*\)%/)
  })
})
