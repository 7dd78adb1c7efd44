-- cancel: stop a work that has not finished. Queued or delayed work never runs; a running
-- work leaves the running set at once and its worker learns it on the next renew (-4).
-- KEYS[1] {prefix}:{p}:work:<id> HASH
-- KEYS[2] {prefix}:{p}:queued    ZSET
-- KEYS[3] {prefix}:{p}:running   ZSET
-- KEYS[4] {prefix}:{p}:delayed   ZSET
-- KEYS[5] {prefix}:{p}:cancelled ZSET
-- KEYS[6] {prefix}:{p}:stats     HASH
-- KEYS[7] {prefix}:{p}:done      STREAM
-- ARGV[1] id
-- ARGV[2] error record (JSON Failure, kind 'cancelled') stored on the work
-- ARGV[3] stream_maxlen: approximate cap of the done stream
-- ARGV[4] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- Returns: the status the work had before ('queued' | 'running' | ...)
-- Errors: -1 NOT_FOUND; -3 BAD_STATUS (already success, failure or cancelled)
local wkey, queued, running, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cancelled, stats, done = KEYS[5], KEYS[6], KEYS[7]
local id, err = ARGV[1], ARGV[2]
local b = {stats = stats, done = done, maxlen = tonumber(ARGV[3]), tp = ARGV[4]}
--@include lifecycle

if redis.call('EXISTS', wkey) == 0 then return -1 end
local status = redis.call('HGET', wkey, 'status') or 'unknown'
if status == 'success' or status == 'failure' or status == 'cancelled' then return -3 end
redis.call('ZREM', queued, id)
redis.call('ZREM', delayed, id)
redis.call('ZREM', running, id)
redis.call('HSET', wkey, 'error', err)
finish(wkey, id, 'cancelled', now_ms(), cancelled, b)
return status
