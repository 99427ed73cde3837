import type { Clock, TimerHandle } from './clock.js'
import type { TokenBucketPolicy, TokenBucketResult } from './token-bucket.js'

/** One store call not yet answered, linked in order of its deadline. */
class PendingTake {
  next: PendingTake | undefined = undefined
  settled = false
  resolve: (result: TokenBucketResult) => void = noop
  reject: (error: unknown) => void = noop

  constructor(
    readonly deadline: number,
    readonly cost: number,
  ) {}
}

function noop(): void {}

/**
 * The calls an asynchronous token-bucket store (Redis) has not answered yet. Requests wait on them
 * before admission, so a store in trouble must not hold them without limit: each call gets a deadline
 * `timeoutMs` away, and at most `maxPending` calls wait at once — beyond that the store is not called
 * at all. A call past its deadline, or one never made, is answered by the store's own error policy:
 * `allow` answers as a full bucket would (the per-client limit lapses; admission control still
 * protects the server), `reject` fails the take.
 *
 * One timer for all calls, as the controller's queue has: deadlines are `timeoutMs` after each call,
 * so calls are already in deadline order in a linked list, and the timer is set for the oldest. A call
 * answered in time is only marked, and leaves the list when it reaches the front; the timer is not
 * cleared, it fires at most once per `timeoutMs` while calls keep coming and stops when none is left.
 */
export class PendingTakes {
  private count = 0
  private oldest: PendingTake | undefined = undefined
  private newest: PendingTake | undefined = undefined
  private timer: TimerHandle | undefined = undefined
  // Built once and reused: rejecting a request must not capture a stack per request.
  private readonly timeoutError: Error
  private readonly busyError: Error
  private readonly onTimer = (): void => this.expire()

  constructor(
    private readonly timeoutMs: number,
    private readonly maxPending: number,
    private readonly allow: boolean,
    private readonly policy: TokenBucketPolicy,
    private readonly clock: Clock,
  ) {
    this.timeoutError = messageOnly(`rate-limit store did not answer within ${timeoutMs} ms`)
    this.busyError = messageOnly(`${maxPending} rate-limit store calls are pending already`)
  }

  /** True when `maxPending` calls are waiting: the next take must not call the store. */
  get full(): boolean {
    return this.count >= this.maxPending
  }

  /** The answer to a take the store was not asked, because `maxPending` calls are waiting already. */
  refuse(cost: number): Promise<TokenBucketResult> {
    return this.allow ? Promise.resolve(fullBucket(cost, this.policy)) : Promise.reject(this.busyError)
  }

  /** The store's answer if it comes within `timeoutMs`, else the policy's. */
  watch(answer: PromiseLike<TokenBucketResult>, cost: number): Promise<TokenBucketResult> {
    const call = new PendingTake(this.clock.now() + this.timeoutMs, cost)
    const promise = new Promise<TokenBucketResult>((resolve, reject) => {
      call.resolve = resolve
      call.reject = reject
    })
    this.count++
    if (this.newest === undefined) this.oldest = call
    else this.newest.next = call
    this.newest = call
    if (this.timer === undefined) this.timer = this.clock.setTimeout(this.onTimer, this.timeoutMs)
    answer.then(
      (result) => {
        if (this.finish(call)) call.resolve(result)
      },
      // A late failure is dropped: the take was answered already (and the store reported it).
      (error: unknown) => {
        if (this.finish(call)) call.reject(error)
      },
    )
    return promise
  }

  /** Marks `call` answered; false when its deadline had answered it already. */
  private finish(call: PendingTake): boolean {
    if (call.settled) return false
    call.settled = true
    this.count--
    while (this.oldest?.settled) this.oldest = this.oldest.next
    if (this.oldest === undefined) this.newest = undefined
    return true
  }

  private expire(): void {
    this.timer = undefined
    const now = this.clock.now()
    let call = this.oldest
    for (; call !== undefined && (call.settled || call.deadline <= now); call = call.next) {
      if (call.settled) continue
      call.settled = true
      this.count--
      if (this.allow) call.resolve(fullBucket(call.cost, this.policy))
      else call.reject(this.timeoutError)
    }
    this.oldest = call
    if (call === undefined) this.newest = undefined
    else this.timer = this.clock.setTimeout(this.onTimer, call.deadline - now)
  }
}

/** What a full bucket answers to a take of `cost`: nothing is known about the key, so it gets the benefit of the doubt. */
function fullBucket(cost: number, policy: TokenBucketPolicy): TokenBucketResult {
  const tokens = policy.capacity - cost
  return {
    allowed: true,
    remaining: Math.floor(tokens),
    retryAfterMs: 0,
    resetMs: cost > 0 ? cost / (policy.refillPerSecond / 1000) : 0,
  }
}

function messageOnly(message: string): Error {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new Error(message)
  } finally {
    Error.stackTraceLimit = limit
  }
}
