import type { IncomingMessage, Server } from 'node:http'
import type { HttpBackpressure } from '@backpressure/core'
import { Redis, type RedisOptions } from 'ioredis'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { type RedisServer, startRedis } from './redis-server.js'

/**
 * Registers the hooks of a describe block whose tests run HTTP servers against one real redis-server:
 * the server starts before the block; the servers and HTTP layers a test pushes are closed after it;
 * every client `connect` made is disconnected, and the redis-server stopped, after the block.
 */
export function useRedisWithServers() {
  let redis: RedisServer | undefined
  const clients: Redis[] = []
  const servers: Server[] = []
  const layers: HttpBackpressure<IncomingMessage>[] = []
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
    for (const layer of layers.splice(0)) await layer.close()
  })
  afterAll(async () => {
    for (const client of clients) client.disconnect()
    await redis?.stop()
  })
  /** A client of the block's redis-server (errors swallowed: tests read them from commands). */
  function connect(options: RedisOptions = {}): Redis {
    const client = new Redis({ host: '127.0.0.1', port: redis!.port, ...options })
    client.on('error', () => {})
    clients.push(client)
    return client
  }
  return { servers, layers, connect }
}
