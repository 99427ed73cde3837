export { AgentCheck, type AgentCheckOptions, listenAgentCheck } from './agent-check.js'
export {
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  type CircuitStateChange,
} from './circuit-breaker.js'
export {
  type Clock,
  ManualClock,
  type RandomSource,
  seededRandom,
  systemClock,
  type TimerHandle,
} from './clock.js'
export {
  type AbortSignalLike,
  type AcquireOptions,
  BackpressureController,
  type BackpressureOptions,
  Permit,
  Rejection,
} from './controller.js'
export type { HistogramSnapshot } from './cumulative-histogram.js'
export { DURATION_BUCKETS_SECONDS, RETRY_AFTER_BUCKETS_SECONDS } from './cumulative-histogram.js'
export {
  BackpressureError,
  ERROR_CODES,
  INVALID_OPTION_CODE,
  InvalidOptionError,
  REJECTION_REASON_LIST,
  REJECTION_REASONS,
  type RejectionCode,
  type RejectionReason,
} from './errors.js'
export { EventLoopShedder, type EventLoopSheddingOptions } from './event-loop-shedding.js'
export {
  type BackpressureEventName,
  type BackpressureEvents,
  type BackpressureListener,
  DIAGNOSTICS_CHANNELS,
} from './events.js'
export {
  type Decision,
  HttpBackpressure,
  type HttpBackpressureOptions,
  type HttpResponse,
  type MetricsExposition,
  type MetricsOptions,
  PASS,
  type RateLimitOptions,
  RETRIED_BELOW_HEADER,
  type RejectInfo,
  type RouteRule,
} from './http.js'
export { DEFAULT_DEADLINE_HEADER, HTTP_OPTION_KEYS } from './http-options.js'
export {
  AimdLimit,
  type AimdLimitOptions,
  type ConcurrencyLimit,
  FixedLimit,
  GradientLimit,
  type GradientLimitOptions,
  type LimitOption,
} from './limit.js'
export type { MapOptions } from './map.js'
export {
  type ClusterAggregator,
  HISTOGRAM_FAMILIES,
  type HistogramFamily,
  METRIC_FAMILIES,
  REJECTIONS_FAMILY,
  SCALAR_FAMILIES,
  type ScalarFamily,
} from './metric-families.js'
export { metricsJson, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './metrics-text.js'
export type { ProcessSample, ProcessSampler } from './process-signals.js'
export { defineSignalGetter, linkResponse, requestSignal } from './request-state.js'
export type { RetryAfterContext, RetryAfterOption } from './retry-after.js'
export {
  MemoryBaselineBoard,
  type MemoryBaselineBoardOptions,
  type SharedBaseline,
} from './shared-baseline.js'
export { type BackpressureStats, CLIENT_CAUSED_REASONS } from './stats.js'
export {
  MemoryTokenBucketStore,
  type TokenBucketAnswer,
  TokenBucketLimiter,
  type TokenBucketOptions,
  type TokenBucketPolicy,
  type TokenBucketResult,
  type TokenBucketStore,
} from './token-bucket.js'
export { assertKnownKeys } from './validate.js'
export type { WritableOptions } from './writable.js'
