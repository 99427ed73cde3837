// The checks behind esm.mjs and cjs.cjs. Every package (ours and the frameworks) arrives as an argument,
// loaded by the caller, so the same checks prove the `import` builds from esm.mjs and the `require`
// builds from cjs.cjs. Prints one JSON report for release/pack.test.ts to assert on.

const LIMITS = { maxConcurrency: 1, maxQueueDepth: 0 }

/** A promise with its resolver. */
function gate() {
  let open
  const opened = new Promise((resolve) => {
    open = resolve
  })
  return { opened, open }
}

/**
 * The /hold route of every server: a request to it waits inside the route until the check lets it go,
 * holding the only slot (maxConcurrency 1) meanwhile.
 */
function holder() {
  let entered = gate()
  let hold = gate()
  return {
    async route() {
      entered.open()
      await hold.opened
      return 'held'
    },
    /** Runs `fn` while one request holds the slot, then lets that request finish. */
    async whileHeld(url, fn) {
      const held = fetch(`${url}/hold`).then(async (response) => [response.status, await response.text()])
      const first = await Promise.race([entered.opened.then(() => 'entered'), held.then(() => 'answered')])
      if (first !== 'entered') throw new Error(`/hold answered ${(await held)[0]} without holding the slot`)
      try {
        const during = await fn()
        hold.open()
        return { during, held: await held }
      } finally {
        hold.open()
        entered = gate()
        hold = gate()
      }
    },
  }
}

async function get(url) {
  const response = await fetch(url)
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    retryAfter: response.headers.get('retry-after') ?? '',
    body: await response.text(),
  }
}

/** Health, a route and /metrics answer; with the slot held and no queue, the next request is shed. */
async function exercise(url, routes) {
  const health = await get(`${url}/health`)
  const work = await get(`${url}/work`)
  const metrics = await get(`${url}/metrics`)
  const { during: shed, held } = await routes.whileHeld(url, () => get(`${url}/work`))
  return {
    health: health.status,
    work: [work.status, work.body],
    metrics: [
      metrics.status,
      metrics.contentType.split(';')[0],
      metrics.body.includes('backpressure_in_flight'),
    ],
    shed: [shed.status, /^[1-9][0-9]*$/.test(shed.retryAfter), JSON.parse(shed.body).reason],
    held,
  }
}

async function core({ BackpressureController, BackpressureError }) {
  const controller = new BackpressureController(LIMITS)
  const value = await controller.submit(async () => 42)
  const hold = gate()
  const running = controller.submit(() => hold.opened)
  const error = await controller.submit(async () => 'never').catch((e) => e)
  hold.open()
  await running
  return {
    submitted: value,
    rejected: [BackpressureError.is(error), error.status, error.reason],
    inFlight: controller.inFlight,
  }
}

function listening(server) {
  return new Promise((resolve) =>
    server.once('listening', () => resolve(`http://127.0.0.1:${server.address().port}`)),
  )
}

async function closeNodeServer(limiter, server) {
  await limiter.close()
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/**
 * Express, with the Prometheus package rendering /metrics from a prom-client Registry; the client is
 * tried against this server, and the registry rendered directly.
 */
async function express(ours, peers) {
  const { backpressure } = ours.express
  const { prometheusRender, registerBackpressureMetrics } = ours.prometheus
  const registry = new peers.promClient.Registry()
  const limiter = backpressure({ ...LIMITS, name: 'api', metrics: { render: prometheusRender(registry) } })
  registerBackpressureMetrics(limiter.controller, { registry })
  const routes = holder()
  const app = peers.express()
  app.use(limiter)
  app.get('/work', (_req, res) => res.send('ok'))
  app.get('/hold', async (_req, res) => res.send(await routes.route()))
  app.use(limiter.errorHandler)
  const server = app.listen(0, '127.0.0.1')
  const url = await listening(server)
  try {
    const adapter = await exercise(url, routes)
    const client = await clientChecks(ours.client, url, routes)
    const prometheus = {
      contentType: registry.contentType.split(';')[0],
      rendered: (await registry.metrics()).includes('backpressure_in_flight{controller="api"} 0'),
    }
    return { express: adapter, client, prometheus }
  } finally {
    await closeNodeServer(limiter, server)
  }
}

/** The retrying fetch: a plain 200, then a 503 it gives up on after its one attempt. */
async function clientChecks({ createFetch, RetryError }, url, routes) {
  const fetchOnce = createFetch({ maxAttempts: 1 })
  const ok = await fetchOnce(`${url}/work`)
  const { during: error } = await routes.whileHeld(url, () => fetchOnce(`${url}/work`).catch((e) => e))
  return {
    ok: [ok.status, await ok.text()],
    gaveUp: [error instanceof RetryError, error.lastStatus, error.retryAfterMs >= 1000],
  }
}

async function fastify({ backpressure }, peers) {
  const routes = holder()
  const app = peers.fastify({ forceCloseConnections: true })
  await app.register(backpressure, LIMITS)
  app.get('/work', async () => 'ok')
  app.get('/hold', () => routes.route())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    return await exercise(url, routes)
  } finally {
    await app.close()
  }
}

async function koa({ backpressure }, peers) {
  const routes = holder()
  const limiter = backpressure(LIMITS)
  const app = new peers.Koa()
  app.use(limiter)
  app.use(async (ctx) => {
    if (ctx.path === '/work') ctx.body = 'ok'
    if (ctx.path === '/hold') ctx.body = await routes.route()
  })
  const server = app.listen(0, '127.0.0.1')
  const url = await listening(server)
  try {
    return await exercise(url, routes)
  } finally {
    await closeNodeServer(limiter, server)
  }
}

/** Against the redis-server the harness started (REDIS_PORT); without one, only constructed. */
async function redis(
  { RedisSharedBaseline, RedisTokenBucketStore },
  { TokenBucketLimiter },
  { Redis },
  format,
) {
  const port = process.env.REDIS_PORT
  const connection = new Redis({ host: '127.0.0.1', port: Number(port ?? 6379), lazyConnect: true })
  const store = new RedisTokenBucketStore({ client: connection, prefix: `smoke:${format}:` })
  if (port === undefined) return { constructed: store.client === connection }
  try {
    const limiter = new TokenBucketLimiter({ capacity: 1, refillPerSecond: 0.001, store })
    const first = await limiter.take('k')
    const second = await limiter.take('k')
    // The adaptive limit's fleet baseline, written and read back through its script.
    const shared = new RedisSharedBaseline({ client: connection, key: `smoke:${format}:baseline` })
    await shared.publish(12.5)
    const baseline = await shared.refresh()
    await shared.close()
    return { taken: [first.allowed, second.allowed], baseline }
  } finally {
    await connection.quit()
  }
}

/** A BullMQ worker on the same redis-server: three jobs run under the controller; without Redis, only constructed. */
async function bullmq({ BackpressureWorker }, { BackpressureController }, { Queue }, format) {
  const port = process.env.REDIS_PORT
  const connection = { host: '127.0.0.1', port: Number(port ?? 6379), maxRetriesPerRequest: null }
  const controller = new BackpressureController({ maxConcurrency: 2 })
  const name = `smoke-${format}`
  if (port === undefined) {
    const consumer = new BackpressureWorker(name, async () => 1, {
      controller,
      worker: { connection, autorun: false },
    })
    const constructed = consumer.worker.concurrency === 2
    await consumer.close()
    return { constructed }
  }
  const queue = new Queue(name, { connection })
  const consumer = new BackpressureWorker(name, async (job) => job.data.n * 2, {
    controller,
    worker: { connection },
  })
  try {
    const results = []
    const finished = new Promise((resolve) => {
      consumer.worker.on('completed', (_job, result) => {
        results.push(result)
        if (results.length === 3) resolve()
      })
    })
    await queue.addBulk([1, 2, 3].map((n) => ({ name: 'j', data: { n } })))
    await finished
    return {
      results: results.sort(),
      concurrency: consumer.worker.concurrency,
      inFlight: controller.inFlight,
    }
  } finally {
    await consumer.close()
    await queue.obliterate({ force: true })
    await queue.close()
  }
}

/** An AMQP consumer on the RabbitMQ node the harness started (AMQP_URL); without one, only constructed. */
async function amqp({ AmqpConsumer }, { BackpressureController }, amqplib, format) {
  const url = process.env.AMQP_URL
  const controller = new BackpressureController({ maxConcurrency: 2 })
  if (url === undefined) {
    const connection = { createConfirmChannel() {} }
    return {
      constructed: new AmqpConsumer(async () => {}, { controller, connection, queue: 'q' }).prefetch === 0,
    }
  }
  const connection = await amqplib.connect(url)
  try {
    const queue = `smoke-${format}`
    const setup = await connection.createConfirmChannel()
    await setup.assertQueue(queue, { durable: false })
    const handled = []
    let consumer
    const finished = new Promise((resolve) => {
      consumer = new AmqpConsumer(
        async (message) => {
          handled.push(message.content.toString())
          if (handled.length === 3) resolve()
        },
        { controller, connection, queue },
      )
    })
    await consumer.start()
    for (const body of ['a', 'b', 'c']) setup.sendToQueue(queue, Buffer.from(body))
    await setup.waitForConfirms()
    await finished
    await consumer.close()
    const left = (await setup.checkQueue(queue)).messageCount
    await setup.deleteQueue(queue)
    return { handled: handled.sort(), prefetch: consumer.prefetch, left }
  } finally {
    await connection.close()
  }
}

/**
 * @param format 'esm' or 'cjs', as the caller loaded the packages
 * @param ours our packages by short name (core, express, …)
 * @param peers the frameworks and libraries a user installs next to them
 * @param resolved the file each of our packages resolved to
 */
export async function run(format, ours, peers, resolved) {
  const report = { format, resolved }
  report.core = await core(ours.core)
  Object.assign(report, await express(ours, peers))
  report.fastify = await fastify(ours.fastify, peers)
  report.koa = await koa(ours.koa, peers)
  report.redis = await redis(ours.redis, ours.core, peers.ioredis, format)
  report.bullmq = await bullmq(ours.bullmq, ours.core, peers.bullmq, format)
  report.amqp = await amqp(ours.amqp, ours.core, peers.amqplib, format)
  console.log(JSON.stringify(report))
}
