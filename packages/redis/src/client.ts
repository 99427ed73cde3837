import { InvalidOptionError } from '@backpressure/core'
import type { Cluster, Redis } from 'ioredis'

/** `client` as an ioredis client (a `Redis` or a `Cluster`), or an error naming the option. */
export function ioredisClient(client: unknown): Redis | Cluster {
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof (client as Redis).defineCommand !== 'function'
  ) {
    throw new InvalidOptionError('client', 'an ioredis client (Redis or Cluster)', client)
  }
  return client as Redis | Cluster
}
