import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { BackpressureController, GradientLimit } from '@backpressure/core'
import { describe, expect, it } from 'vitest'

// The adapters' READMEs state each option's default by hand; these tests hold them to the code, so a
// default changed in one place cannot go on being documented as the old one (the CoDel interval did).

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8')

const controller = new BackpressureController()
const options = controller.options
void controller.close()

/** What the code resolves with no options, as each README must state it. */
const DEFAULTS: readonly (readonly [string, string])[] = [
  ['maxQueueDepth', `\`${options.maxQueueDepth}\``],
  ['maxQueueWaitMs', `\`${options.maxQueueWaitMs}\``],
  ['latencyThresholdMs', `\`${options.latencyThresholdMs}\``],
  ['adaptiveRejection', `\`${options.adaptiveRejection}\``],
  ['latencyWindowMs', `\`${options.latencyWindowMs}\``],
  ['latencyMinSamples', `\`${options.latencyMinSamples}\``],
  ['adaptiveLifo', `\`${options.adaptiveLifo}\``],
  ['codel', `\`{ targetMs: ${options.codel?.targetMs}, intervalMs: ${options.codel?.intervalMs} }\``],
]

/** `##### name` … `Default: …` sections (Express, Koa). */
function sectionDefault(readme: string, option: string): string | undefined {
  const at = readme.indexOf(`##### ${option}\n`)
  if (at === -1) return undefined
  return /\nDefault: (.*)/.exec(readme.slice(at))?.[1]
}

/** `| \`name\` | type | default | … |` rows (Fastify). */
function tableDefault(readme: string, option: string): string | undefined {
  const row = readme.split('\n').find((line) => line.startsWith(`| \`${option}\``))
  // Cells split on pipes that are not escaped (`boolean \| {…}` stays one cell).
  return row?.split(/(?<!\\)\|/)[3]?.trim()
}

describe('option defaults in the READMEs agree with the code', () => {
  it('the default limit is the gradient one', () => {
    const limit = new BackpressureController()
    expect((limit as unknown as { limiter: unknown }).limiter).toBeInstanceOf(GradientLimit)
    void limit.close()
  })

  for (const readme of ['packages/express/README.md', 'packages/koa/README.md']) {
    it.each(DEFAULTS)(`${readme}: %s`, (option, stated) => {
      const text = read(readme)
      const found = sectionDefault(text, option)
      expect(found, `no "##### ${option}" section with a Default line`).toBeDefined()
      expect(found).toContain(stated)
    })
  }

  it.each(DEFAULTS)('packages/fastify/README.md: %s', (option, stated) => {
    const found = tableDefault(read('packages/fastify/README.md'), option)
    expect(found, `no table row for ${option}`).toBeDefined()
    expect(found).toContain(stated)
  })
})
