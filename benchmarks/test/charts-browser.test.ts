import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

/**
 * The committed charts, opened in a real browser (headless Chromium from Debian): each one renders,
 * and its legend shows every label whole, inside the picture, each series in a colour of its own.
 */
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url))
const charts = readdirSync(DOCS).filter((f) => /^benchmarks-.*\.svg$/.test(f))
const CHROMIUM = 'chromium'
const hasChromium = spawnSync(CHROMIUM, ['--version'], { stdio: 'ignore' }).status === 0
if (!hasChromium)
  console.warn(
    'chromium is not installed (Debian package `chromium`; scripts/system-deps.sh installs it): skipping',
  )

const work = mkdtempSync(join(tmpdir(), 'charts-browser-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

function chromium(args: string[]): Promise<string> {
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    `--user-data-dir=${mkdtempSync(join(work, 'profile-'))}`,
  ]
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, [...flags, ...args], { timeout: 60_000, maxBuffer: 16 << 20 }, (error, stdout) =>
      error ? reject(error) : resolve(stdout),
    )
  })
}

/**
 * Measured in the page once laid out: every legend label's text and box, every legend symbol's colour
 * (its fill, or for a line chart's legend, whose symbols are strokes, its stroke).
 */
const PROBE = `
const svg = document.querySelector('svg')
const frame = svg.getBoundingClientRect()
const labels = [...svg.querySelectorAll('.role-legend-label text')].map((t) => {
  const box = t.getBoundingClientRect()
  return { text: t.textContent, left: box.left - frame.left, right: box.right - frame.left, width: box.width }
})
const fills = [...svg.querySelectorAll('.role-legend-symbol path')].map((p) => {
  const style = getComputedStyle(p)
  return style.fill === 'none' ? style.stroke : style.fill
})
const out = document.createElement('pre')
out.id = 'probe'
out.textContent = JSON.stringify({ width: frame.width, labels, fills })
document.body.appendChild(out)
`

interface Probe {
  width: number
  labels: { text: string; left: number; right: number; width: number }[]
  fills: string[]
}

describe.skipIf(!hasChromium)('the benchmark charts in headless Chromium', () => {
  it('are the charts the report embeds', () => {
    const page = readFileSync(`${DOCS}benchmarks.md`, 'utf8')
    const embedded = [...page.matchAll(/!\[[^\]]*\]\((benchmarks-[^)]+\.svg)\)/g)].map((m) => m[1])
    expect(charts.sort()).toEqual([...embedded].sort())
  })

  for (const file of charts) {
    it(`${file} renders, with every legend label whole and every series its own colour`, async () => {
      const html = join(work, `${file}.html`)
      writeFileSync(
        html,
        `<!doctype html><html><body style="margin:0">${readFileSync(`${DOCS}${file}`, 'utf8')}<script>${PROBE}</script></body></html>`,
      )
      const png = join(work, `${file}.png`)
      await chromium([`--screenshot=${png}`, '--window-size=1200,1000', pathToFileURL(html).href])
      // A blank page is a few KB; a chart with axes, lines and a legend is tens.
      expect(statSync(png).size).toBeGreaterThan(20_000)
      expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG')

      const dom = await chromium(['--dump-dom', pathToFileURL(html).href])
      const json = dom.match(/<pre id="probe">(.*?)<\/pre>/s)?.[1]
      expect(json, 'the probe ran').toBeDefined()
      const probe = JSON.parse(json!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as Probe
      expect(probe.labels.length).toBeGreaterThan(1)
      for (const label of probe.labels) {
        expect(label.text, 'cut with an ellipsis').not.toMatch(/…$/)
        expect(label.width, label.text).toBeGreaterThan(0)
        expect(label.right, `${label.text} runs past the picture`).toBeLessThanOrEqual(probe.width)
      }
      expect(new Set(probe.labels.map((l) => l.text)).size).toBe(probe.labels.length)
      expect(probe.fills.length).toBe(probe.labels.length)
      expect(new Set(probe.fills).size, probe.fills.join(', ')).toBe(probe.fills.length)
    }, 120_000)
  }
})
