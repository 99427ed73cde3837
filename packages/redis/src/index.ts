export { RedisSharedBaseline, type RedisSharedBaselineOptions } from './baseline.js'
export { BASELINE_SCRIPT, TAKE_SCRIPT } from './script.js'
export {
  type RedisErrorPolicy,
  type RedisTimeSource,
  RedisTokenBucketStore,
  type RedisTokenBucketStoreOptions,
} from './store.js'
