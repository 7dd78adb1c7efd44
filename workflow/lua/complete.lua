-- complete: finish the callers' attempts of running works, fenced by their lease tokens,
-- a batch of works of one pipeline per call (each checked and applied on its own).
--   success -> success (terminal); failure -> queued after backoff while attempts remain,
--   else failure (terminal); release -> queued again at once, back in its place (the
--   sequence number it was queued with), the attempt not counted (a worker handing back
--   work it did not run, or stopped on shutdown). A work leased ahead (`ahead`) has its
--   attempt counted here, when it finished, not when it was withdrawn. The error of an earlier failed attempt is
--   kept on success: it is the record of what happened.
-- Re-sending the same completion (same token) after a lost reply returns the status it
-- produced without applying it twice.
-- KEYS[1] {prefix}:{p}:queued    ZSET
-- KEYS[2] {prefix}:{p}:running   ZSET
-- KEYS[3] {prefix}:{p}:delayed   ZSET
-- KEYS[4] {prefix}:{p}:success   ZSET
-- KEYS[5] {prefix}:{p}:failure   ZSET
-- KEYS[6] {prefix}:{p}:seq       STRING
-- KEYS[7] {prefix}:{p}:stats     HASH
-- KEYS[8] {prefix}:{p}:done      STREAM
-- KEYS[9] {prefix}:{p}:wake      LIST
-- ARGV[1] work key prefix ({prefix}:{p}:work:)
-- ARGV[2] backoff_base_ms, ARGV[3] backoff_max_ms
-- ARGV[4] stream_maxlen: approximate cap of the done stream
-- ARGV[5] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[6] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- ARGV[7..] per work: id, token (the lease token handed out by withdraw), outcome
--   ('success' | 'failure' | 'release'), terminal ('1' fails without retry, e.g. a corrupt
--   record), jitter in [0, 1), space-separated fields to delete first (fields the user set
--   to None), n, then n field/value pairs stored (results, products, plots, error, ...)
-- Returns: per work, the new status ('success' | 'failure' | 'queued') or a negative code
-- Errors: -1 NOT_FOUND; -2 LEASE_LOST (another attempt holds it, or it was cancelled or
--   expired; counted in stats 'rejected' and the record's 'rejected')
local queued, running, delayed, success, failure = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local seq, stats, done, wake = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local prefix = ARGV[1]
local b = {delayed = delayed, failure = failure, stats = stats, done = done,
  backoff_base = tonumber(ARGV[2]), backoff_max = tonumber(ARGV[3]),
  maxlen = tonumber(ARGV[4]), wake = wake, wake_cap = tonumber(ARGV[5]), tp = ARGV[6],
  tally = {}}
--@include lifecycle

local now = now_ms()

local function complete_one(id, token, outcome, terminal_now, dels, first, last_pair)
  local wkey = prefix .. id
  local rec = redis.call('HMGET', wkey, 'status', 'token', 'last', 'attempt', 'ahead')
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
  redis.call('ZREM', running, id)
  local names = {}
  for field in string.gmatch(dels, '%S+') do names[#names + 1] = field end
  local attempt = tonumber(rec[4]) or 0
  local ahead = rec[5] == '1'
  names[#names + 1] = 'ahead'
  if ahead and outcome ~= 'release' then  -- leased ahead, and it ran: count it now
    attempt = attempt + 1
  end
  redis.call('HDEL', wkey, unpack(names))
  local pairs_ = {'last', token .. '/' .. outcome, 'attempt', attempt}
  for i = first, last_pair do pairs_[#pairs_ + 1] = ARGV[i] end
  redis.call('HSET', wkey, unpack(pairs_))
  if outcome == 'success' then
    finish(wkey, id, 'success', now, success, b, attempt)
    return 'success'
  elseif outcome == 'release' then
    local number = tonumber(redis.call('HGET', wkey, 'seq')) or redis.call('INCR', seq)
    redis.call('HSET', wkey, 'status', 'queued', 'queued_at', now,
      'attempt', ahead and attempt or math.max(attempt - 1, 0))
    redis.call('ZADD', queued, queue_score(priority_of(wkey), number), id)
    wake_one(b)
    redis.pcall('HINCRBY', stats, 'released', 1)
    return 'queued'
  end
  local err = redis.call('HGET', wkey, 'error') or ''
  return fail_or_retry(wkey, id, now, err, terminal_now, b)
end

local out = {}
local i = 7
while i <= #ARGV do
  local n = tonumber(ARGV[i + 6])
  b.jitter = tonumber(ARGV[i + 4])
  out[#out + 1] = complete_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1',
    ARGV[i + 5], i + 7, i + 6 + 2 * n)
  i = i + 7 + 2 * n
end
for status, n in pairs(b.tally) do
  redis.pcall('HINCRBY', stats, status, n)
  count_minute(b.tp, now, status, n)
end
return out
