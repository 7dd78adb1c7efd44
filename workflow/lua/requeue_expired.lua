-- requeue_expired: the recovery sweep withdraw also runs, on its own (for a status view or
-- an operator): expired leases fail or retry, due delayed works join the queue.
-- KEYS[1] {prefix}:{p}:queued   ZSET
-- KEYS[2] {prefix}:{p}:running  ZSET
-- KEYS[3] {prefix}:{p}:delayed  ZSET
-- KEYS[4] {prefix}:{p}:failure  ZSET
-- KEYS[5] {prefix}:{p}:seq      STRING
-- KEYS[6] {prefix}:{p}:stats    HASH
-- KEYS[7] {prefix}:{p}:done     STREAM
-- KEYS[8] {prefix}:{p}:wake     LIST
-- ARGV[1] work key prefix ({prefix}:{p}:work:)
-- ARGV[2] limit: most expired leases reclaimed, and most delayed works promoted
-- ARGV[3] backoff_base_ms, ARGV[4] backoff_max_ms, ARGV[5] jitter in [0, 1)
-- ARGV[6] stream_maxlen: approximate cap of the done stream
-- ARGV[7] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[8] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- Returns: {reclaimed, promoted}
-- Errors: none
local queued, running, delayed, failure = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq, stats, done, wake = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local b = {delayed = delayed, failure = failure, stats = stats, done = done,
  backoff_base = tonumber(ARGV[3]), backoff_max = tonumber(ARGV[4]),
  jitter = tonumber(ARGV[5]), maxlen = tonumber(ARGV[6]),
  wake = wake, wake_cap = tonumber(ARGV[7]), tp = ARGV[8], queued = queued, seq = seq}
--@include lifecycle

local now = now_ms()
local reclaimed = reclaim(running, prefix, now, limit, b)
local promoted = promote(delayed, queued, seq, prefix, now, limit)
return {reclaimed, promoted}
