// Error codes that mean the request never reached the application or the connection broke under it:
// Node's socket errors and undici's. A retry of an idempotent request after one of these is safe.
const NETWORK_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

/**
 * True for a network failure: a socket error code on the error or its `cause` chain, or the `TypeError:
 * fetch failed` that Node's fetch wraps them in. The default of `retryOnError`.
 *
 * @example
 * ```ts
 * createFetch({ retryOnError: (error) => isNetworkError(error) || error instanceof MyTransientError })
 * ```
 */
export function isNetworkError(error: unknown): boolean {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true
    current = (current as { cause?: unknown }).cause
  }
  return error instanceof TypeError && error.message === 'fetch failed'
}

/** Reads a header from a `Headers`-like object (`get()`) or a plain object of any key case. */
export function headerValue(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined
  const get = (headers as { get?: unknown }).get
  if (typeof get === 'function') {
    const value: unknown = get.call(headers, name)
    return typeof value === 'string' ? value : undefined
  }
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue
    if (typeof value === 'string') return value
    if (typeof value === 'number') return String(value)
    if (Array.isArray(value) && typeof value[0] === 'string') return value[0]
  }
  return undefined
}

/** A value shaped like a fetch `Response`: a numeric `status` and `headers.get()`. */
export interface ResponseLike {
  status: number
  headers: { get(name: string): string | null }
  body?: unknown
}

export function isResponseLike(value: unknown): value is ResponseLike {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as { status?: unknown; headers?: { get?: unknown } | null }
  return typeof candidate.status === 'number' && typeof candidate.headers?.get === 'function'
}

/**
 * The HTTP status an error carries — `status` or `statusCode` (our own `BackpressureError`, http-errors,
 * Fastify, Koa) or `response.status` (ky, got, axios) — and the headers that came with it.
 */
export function errorStatus(error: unknown): { status: number; headers: unknown } | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const candidate = error as {
    status?: unknown
    statusCode?: unknown
    headers?: unknown
    response?: { status?: unknown; headers?: unknown } | null
  }
  const response = typeof candidate.response === 'object' ? candidate.response : undefined
  const status = candidate.status ?? candidate.statusCode ?? response?.status
  if (typeof status !== 'number') return undefined
  return { status, headers: candidate.headers ?? response?.headers }
}

/**
 * Reads and throws away the body of a response that is being retried: undici returns a connection to
 * its pool only once the body has been consumed. Small bodies (a 503's JSON) are read to the end so the
 * socket is reused; a large one is cancelled rather than downloaded. Not awaited by the caller: it runs
 * during the wait before the retry.
 */
export function discardBody(response: unknown, limitBytes = 64 * 1024): void {
  const body = (response as { body?: unknown } | null)?.body
  if (typeof body !== 'object' || body === null || typeof (body as ReadableStream).getReader !== 'function')
    return
  drain(body as ReadableStream<Uint8Array>, limitBytes).catch(() => {
    // A body that errors while being thrown away needs no handling: nobody is waiting for it.
  })
}

async function drain(body: ReadableStream<Uint8Array>, limitBytes: number): Promise<void> {
  const reader = body.getReader()
  let read = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    read += value.byteLength
    if (read > limitBytes) {
      await reader.cancel()
      return
    }
  }
}
