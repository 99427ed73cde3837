/**
 * The one script a decision runs. Redis executes a script atomically (no other command touches the key
 * while it runs), so read, refill, take and write back are one step for the whole fleet.
 *
 * KEYS[1]  the bucket: a hash { t = tokens, ts = when they were counted, in ms }
 * ARGV[1]  capacity
 * ARGV[2]  tokens refilled per millisecond (refillPerSecond / 1000, computed once in JavaScript so that
 *          both stores multiply by the very same double)
 * ARGV[3]  cost
 * ARGV[4]  now in ms, or '' to read Redis's own clock (TIME)
 * ARGV[5]  the shortest lifetime of a written key in ms ('0': none)
 *
 * Returns { allowed (1 or 0), tokens left as a string }. Lua numbers are doubles, but Redis truncates a
 * number reply to an integer and `tostring` keeps only 14 digits, so tokens travel as `%.17g` (which
 * round-trips every double) and JavaScript derives remaining/retryAfterMs/resetMs with the memory
 * store's formulas. Arithmetic here mirrors MemoryTokenBucketStore.take step for step, so the two give
 * identical answers for identical times.
 */
export const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local min_ttl = tonumber(ARGV[5])
local EPSILON = 1e-9

if now == nil then
  -- Redis before 5 replicates scripts verbatim and refuses writes after a non-deterministic command
  -- unless told to replicate effects; from Redis 5 this is the default and from 7 the only mode.
  if redis.replicate_commands then redis.replicate_commands() end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end

local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  -- No key: a bucket that was never used or has refilled to full and expired. Both are full.
  tokens = capacity
  updated = now
else
  local elapsed = now - updated
  if elapsed > 0 then tokens = math.min(capacity, tokens + elapsed * per_ms) end
  -- A clock that went backwards must not mint tokens later: time is only ever taken forward.
  if now > updated then updated = now end
end

local allowed = 0
if tokens + EPSILON >= cost then
  allowed = 1
  tokens = math.max(0, tokens - cost)
end

if tokens + EPSILON >= capacity then
  -- A full bucket is the same as no key at all: nothing to keep.
  if min_ttl > 0 then
    redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', updated))
    redis.call('PEXPIRE', KEYS[1], string.format('%d', min_ttl))
  else
    redis.call('DEL', KEYS[1])
  end
else
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', updated))
  -- Expire when the bucket would be full again: after that, forgetting it changes nothing. That is what
  -- bounds the store: only keys seen within one refill window exist. Capped far beyond any sane window
  -- so that an absurdly slow refill cannot overflow PEXPIRE.
  local ttl = math.ceil((capacity - tokens) / per_ms)
  if ttl < min_ttl then ttl = min_ttl end
  if ttl > 1e12 then ttl = 1e12 end
  redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
end

return { allowed, string.format('%.17g', tokens) }
`

/**
 * The shared baseline's one script: writes this instance's baseline (unless ARGV[1] is empty: a read),
 * drops every instance's baseline older than the ttl, and returns the fresh ones. Time is Redis's
 * (`TIME`), so a fleet whose machines' clocks differ ages entries on one clock.
 *
 * KEYS[1]  the hash: { [instance id] = "<baseline ms>:<written at, Redis ms>" }
 * ARGV[1]  this instance's id, or '' to only read
 * ARGV[2]  its baseline in ms (a JavaScript number's shortest round-trip string)
 * ARGV[3]  ttl in ms: how long a baseline counts, and how long the hash outlives its last write
 *
 * Returns the fresh baselines as strings, in no particular order.
 */
export const BASELINE_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[3])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local all = redis.call('HGETALL', KEYS[1])
local fresh = {}
for i = 1, #all, 2 do
  local entry = all[i + 1]
  local sep = string.find(entry, ':', 1, true)
  local at = sep and tonumber(string.sub(entry, sep + 1))
  if at == nil or now - at > ttl then
    redis.call('HDEL', KEYS[1], all[i])
  else
    fresh[#fresh + 1] = string.sub(entry, 1, sep - 1)
  end
end
return fresh
`
