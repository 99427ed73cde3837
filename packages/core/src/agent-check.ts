import { createServer, type Server, type Socket } from 'node:net'
import type { BackpressureController } from './controller.js'
import { InvalidOptionError } from './errors.js'
import { assertKnownKeys, assertObject, integerOption } from './validate.js'

/** Options of the HAProxy agent-check responder. */
export interface AgentCheckOptions {
  /** TCP port HAProxy's `agent-port` points at; `0` picks a free one (read it from `agent.port`). */
  readonly port: number
  /** Address to listen on. @default every interface, as `server.listen(port)` */
  readonly host?: string
}

const AGENT_CHECK_OPTION_KEYS: readonly string[] = Object.keys({
  port: true,
  host: true,
} satisfies Record<keyof AgentCheckOptions, true>)

/**
 * HAProxy's `agent-check` protocol: HAProxy connects every `agent-inter`, reads one line and closes.
 * We answer with the share of the concurrency limit still free as a weight (`up 75%`), so the balancer
 * sends less to an instance whose downstream slowed (its adaptive limit shrank, or its slots are all
 * taken; an instance that shed for overload within the last second counts as full), and `drain` once
 * the controller is closing, so no new traffic arrives while in-flight work
 * ends. Never below 1%: a fleet that is full everywhere must still be balanced, not have every server
 * at weight 0 (HAProxy would then queue or answer its own 503, without our Retry-After).
 */
export class AgentCheck {
  private readonly server: Server
  private readonly requestedPort: number
  private readonly host: string | undefined

  constructor(
    private readonly controller: BackpressureController,
    options: AgentCheckOptions,
  ) {
    assertObject('agentCheck', options)
    assertKnownKeys('agentCheck', options, AGENT_CHECK_OPTION_KEYS)
    if (options.port === undefined)
      throw new InvalidOptionError('agentCheck.port', 'an integer from 0 to 65535', undefined)
    integerOption('agentCheck.port', options.port, 0, 0, 65535)
    if (options.host !== undefined && (typeof options.host !== 'string' || options.host === '')) {
      throw new InvalidOptionError('agentCheck.host', 'a non-empty string', options.host)
    }
    this.requestedPort = options.port
    this.host = options.host
    this.server = createServer((socket) => this.answer(socket))
  }

  /** The line HAProxy reads now (with its newline). */
  reply(): string {
    const controller = this.controller
    if (controller.isClosed) return 'drain\n'
    const stats = controller.stats()
    // Waiters, or a request turned away for overload within the last second, mean nothing is free,
    // whatever the in-flight count says this instant. Under overload that count is noise (a release
    // happened just before the check or not), and HAProxy herds on it: a server reporting 30% beside
    // siblings at 1% gets thirty times their traffic until the next check while their pools idle
    // (measured, three instances at 2x: 83-85% of their summed capacity against 99.5% round-robin).
    const full = stats.queueDepth > 0 || stats.backpressureActive
    const free = full ? 0 : Math.max(0, stats.limit - stats.inFlight) / stats.limit
    return `up ${Math.max(1, Math.round(free * 100))}%\n`
  }

  /** The port it listens on (the one the OS picked for `port: 0`). */
  get port(): number {
    const address = this.server.address()
    return typeof address === 'object' && address !== null ? address.port : this.requestedPort
  }

  listen(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.requestedPort, this.host, () => {
        this.server.off('error', reject)
        resolve(this)
      })
    })
  }

  /** Stops listening. Close it after the HTTP server, so HAProxy keeps reading `drain` until then. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) resolve()
      else this.server.close(() => resolve())
    })
  }

  private answer(socket: Socket): void {
    // A balancer that resets the connection first is no error of ours.
    socket.on('error', ignore)
    socket.end(this.reply())
  }
}

function ignore(): void {}

/**
 * Starts an HAProxy agent-check responder for `controller` (options validated now, synchronously).
 * @example
 * const agent = await listenAgentCheck(limiter.controller, { port: 9000 })
 * // haproxy.cfg: server a 10.0.0.1:3000 weight 100 check agent-check agent-port 9000 agent-inter 1s
 */
export function listenAgentCheck(
  controller: BackpressureController,
  options: AgentCheckOptions,
): Promise<AgentCheck> {
  return new AgentCheck(controller, options).listen()
}
