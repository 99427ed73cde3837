export { TAKE_SCRIPT } from './script.js'
export {
  type RedisErrorPolicy,
  type RedisTimeSource,
  RedisTokenBucketStore,
  type RedisTokenBucketStoreOptions,
} from './store.js'
