-- complete: finish the caller's attempt of a running work, fenced by its lease token.
--   success -> success (terminal); failure -> queued after backoff while attempts remain,
--   else failure (terminal); release -> queued again at once, the attempt not counted
--   (a worker handing work back on shutdown). The error of an earlier failed attempt is
--   kept on success: it is the record of what happened.
-- Re-sending the same completion (same token) after a lost reply returns the status it
-- produced without applying it twice.
-- KEYS[1]  {prefix}:{p}:work:<id> HASH
-- KEYS[2]  {prefix}:{p}:queued    ZSET
-- KEYS[3]  {prefix}:{p}:running   ZSET
-- KEYS[4]  {prefix}:{p}:delayed   ZSET
-- KEYS[5]  {prefix}:{p}:success   ZSET
-- KEYS[6]  {prefix}:{p}:failure   ZSET
-- KEYS[7]  {prefix}:{p}:seq       STRING
-- KEYS[8]  {prefix}:{p}:stats     HASH
-- KEYS[9]  {prefix}:{p}:done      STREAM
-- KEYS[10] {prefix}:{p}:wake      LIST
-- ARGV[1] id
-- ARGV[2] token (the lease token handed out by withdraw)
-- ARGV[3] outcome: 'success' | 'failure' | 'release'
-- ARGV[4] terminal: '1' fails without retry (e.g. a corrupt record), else '0'
-- ARGV[5] backoff_base_ms, ARGV[6] backoff_max_ms, ARGV[7] jitter in [0, 1)
-- ARGV[8] stream_maxlen: approximate cap of the done stream
-- ARGV[9] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[10] space-separated fields to delete first (fields the user set to None)
-- ARGV[11] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- ARGV[12..] field/value pairs stored (results, products, plots, error, body, ...)
-- Returns: the new status ('success' | 'failure' | 'queued'), or a negative code
-- Errors: -1 NOT_FOUND; -2 LEASE_LOST (another attempt holds it, or it was cancelled or
--   expired; counted in stats 'rejected' and the record's 'rejected')
local wkey, queued, running, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local success, failure, seq, stats, done, wake = KEYS[5], KEYS[6], KEYS[7], KEYS[8],
  KEYS[9], KEYS[10]
local id, token, outcome = ARGV[1], ARGV[2], ARGV[3]
local terminal_now = ARGV[4] == '1'
local b = {delayed = delayed, failure = failure, stats = stats, done = done,
  backoff_base = tonumber(ARGV[5]), backoff_max = tonumber(ARGV[6]),
  jitter = tonumber(ARGV[7]), maxlen = tonumber(ARGV[8]),
  wake = wake, wake_cap = tonumber(ARGV[9]), tp = ARGV[11]}
--@include lifecycle

local rec = redis.call('HMGET', wkey, 'status', 'token', 'last')
local status, held, last = rec[1], rec[2], rec[3]
if not status then return -1 end
if held ~= token then
  redis.pcall('HINCRBY', stats, 'rejected', 1)
  redis.pcall('HINCRBY', wkey, 'rejected', 1)
  return -2
end
if status ~= 'running' then
  -- Same token, no longer running: a repeat of the completion that ended this attempt?
  if last == token .. '/' .. outcome then return status end
  redis.pcall('HINCRBY', stats, 'rejected', 1)
  redis.pcall('HINCRBY', wkey, 'rejected', 1)
  return -2
end

local now = now_ms()
redis.call('ZREM', running, id)
store_fields(wkey, ARGV[10], 12)
redis.call('HSET', wkey, 'last', token .. '/' .. outcome)
local new
if outcome == 'success' then
  finish(wkey, id, 'success', now, success, b)
  new = 'success'
elseif outcome == 'release' then
  local attempt = tonumber(redis.call('HGET', wkey, 'attempt')) or 1
  local number = redis.call('INCR', seq)
  redis.call('HSET', wkey, 'status', 'queued', 'attempt', math.max(attempt - 1, 0),
    'queued_at', now)
  redis.call('ZADD', queued, queue_score(priority_of(wkey), number), id)
  wake_one(b)
  redis.pcall('HINCRBY', stats, 'released', 1)
  new = 'queued'
else
  local err = redis.call('HGET', wkey, 'error') or ''
  new = fail_or_retry(wkey, id, now, err, terminal_now, b)
end
return new
