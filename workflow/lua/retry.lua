-- retry: put a failed or cancelled work back in the queue, as a new run: attempt 0 (its
-- full retry budget again), its last error kept on record, behind its priority class.
-- KEYS[1] {prefix}:{p}:work:<id> HASH
-- KEYS[2] {prefix}:{p}:queued    ZSET
-- KEYS[3] {prefix}:{p}:failure   ZSET
-- KEYS[4] {prefix}:{p}:cancelled ZSET
-- KEYS[5] {prefix}:{p}:seq       STRING
-- KEYS[6] {prefix}:{p}:stats     HASH
-- KEYS[7] {prefix}:{p}:wake      LIST
-- ARGV[1] id
-- ARGV[2] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[3] results index key prefix ({prefix}:{p}:ix:): the work leaves the results
-- Returns: the status the work had ('failure' | 'cancelled')
-- Errors: -1 NOT_FOUND; -3 BAD_STATUS (not failure or cancelled: nothing changes)
local wkey, queued, failure, cancelled = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq, stats, wake = KEYS[5], KEYS[6], KEYS[7]
local id = ARGV[1]
local b = {wake = wake, wake_cap = tonumber(ARGV[2])}
local ix_prefix = ARGV[3]
--@include lifecycle

if redis.call('EXISTS', wkey) == 0 then return -1 end
local status = redis.call('HGET', wkey, 'status')
if status ~= 'failure' and status ~= 'cancelled' then return -3 end
local now = now_ms()
local number = redis.call('INCR', seq)  -- before any write
redis.call('ZREM', failure, id)
redis.call('ZREM', cancelled, id)
unindex(wkey, id, ix_prefix)
redis.call('HSET', wkey, 'status', 'queued', 'attempt', 0, 'queued_at', now, 'seq', number)
redis.call('HDEL', wkey, 'stop', 'token', 'last')
redis.call('ZADD', queued, queue_score(priority_of(wkey), number), id)
redis.pcall('HINCRBY', stats, 'requeued', 1)
wake_one(b)
return status
