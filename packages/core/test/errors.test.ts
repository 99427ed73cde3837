import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  BackpressureError,
  ERROR_CODES,
  REJECTION_REASON_LIST,
  REJECTION_REASONS,
  type RejectionReason,
} from '../src/index.js'

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')

describe('error registry', () => {
  it.each(ERROR_CODES)('documents %s in docs/errors.md', (code) => {
    expect(docs).toContain(`\`${code}\``)
  })

  it.each(REJECTION_REASON_LIST)('documents reason %s with its code and status', (reason) => {
    const { code, status } = REJECTION_REASONS[reason as RejectionReason]
    expect(docs).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*\`${reason}\`\\s*\\|\\s*${status}\\s*\\|`))
  })

  it('codes and reasons are unique and stable in shape', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length)
    for (const code of ERROR_CODES) expect(code).toMatch(/^BP_ERR_[A-Z_]+$/)
    for (const reason of REJECTION_REASON_LIST) expect(reason).toMatch(/^[a-z_]+$/)
  })

  it('recognises an error from another copy of the package by its Symbol.for brand', () => {
    const foreign = Object.create({ [Symbol.for('backpressure.error')]: true }) as object
    expect(BackpressureError.is(foreign)).toBe(true)
    expect(BackpressureError.is(new Error('x'))).toBe(false)
    expect(BackpressureError.is(null)).toBe(false)
  })

  it('a rate-limit error is a 429', () => {
    const error = new BackpressureError('rate_limited', 3)
    expect(error.status).toBe(429)
    expect(error.headers['Retry-After']).toBe('3')
  })
})
