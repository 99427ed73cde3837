import type { BackpressureController } from '@backpressure/core'

/**
 * What the conformance suite asks of an adapter: start a real server on 127.0.0.1, port 0, with the
 * adapter installed the way its users install it, serving the routes the suite describes.
 */

/** What a route handler sees. */
export interface NeutralContext {
  /** The request URL (path and query). */
  readonly url: string
  /** The controller the adapter uses, for routes that call `controller.submit`. */
  readonly controller: BackpressureController
  /** The request's AbortSignal in the framework's idiom (`req.signal`, `ctx.signal`, `request.clientSignal`). */
  readonly signal: AbortSignal
  /** Reads the request body the way the framework's body parsing does (Fastify: already parsed). */
  readBody(): Promise<string>
}

/** A plain body, or a streamed one (each chunk written as it comes). */
export type NeutralResult =
  | { readonly status?: number; readonly body: string }
  | { readonly status?: number; readonly stream: AsyncIterable<string> }

/**
 * A route's work. Throwing an error with a `status` (or `statusCode`) must produce that status through
 * the framework's ordinary error handling.
 */
export type NeutralHandler = (context: NeutralContext) => Promise<NeutralResult>

export interface RouteSpec {
  readonly method: 'GET' | 'POST'
  readonly path: string
  /** Per-route priority in the framework's own idiom (Fastify route config; Express/Koa route table). */
  readonly priority?: number
  /** Opts the route out of admission in the framework's own idiom. */
  readonly optOut?: boolean
  readonly handler: NeutralHandler
}

export interface StartedServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly controller: BackpressureController
  close(): Promise<void>
}

/** How a harness sets up its server beyond the adapter's options. */
export interface HarnessSetup {
  /** An asynchronous middleware or hook of the user's runs this long before the adapter sees each request. */
  readonly asyncStepMs?: number
  /** The adapter's admission is attached to the server (`limiter.attach(server)`), before the framework. */
  readonly attached?: boolean
}

export interface AdapterHarness {
  /** `express`, `fastify`, `koa`. */
  readonly name: string
  /**
   * Starts a server with the adapter given `options` (passed through untouched) and serving `routes`.
   * With `asyncStepMs`, an asynchronous middleware or hook of the user's (an auth or session lookup)
   * runs for that long before the adapter sees each request.
   */
  start(
    options: Record<string, unknown>,
    routes: readonly RouteSpec[],
    setup?: HarnessSetup,
  ): Promise<StartedServer>
  /**
   * Installs the adapter with `options` as a user would at setup time and returns nothing; must throw
   * synchronously or reject when the options are invalid (the suite checks the message).
   */
  setup(options: Record<string, unknown>): Promise<void>
  /**
   * Optional, for frameworks where two layers can see one request: like `start`, but every route sits
   * behind two layers of the adapter — the app-wide one with `options`, and a second one closer to the
   * routes (an Express router, a Koa sub-app or router) built with `{ ...inner, controller }` sharing the
   * first's controller, as users do to give a group of routes its own settings. The suite checks that a
   * request is still admitted exactly once. Leave it out where the framework cannot stack the adapter
   * (the suite then skips that test).
   */
  startLayered?(
    options: Record<string, unknown>,
    inner: Record<string, unknown>,
    routes: readonly RouteSpec[],
    setup?: HarnessSetup,
  ): Promise<StartedServer>
}
