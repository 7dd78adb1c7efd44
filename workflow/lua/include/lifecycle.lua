-- Shared lifecycle functions, spliced into scripts that name this file in an include line.
-- Not a script of its own: it has no KEYS/ARGV.

-- The Redis clock in ms: every lease and due time uses this one clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Queue score: higher priority first, then FIFO by sequence.
local function queue_score(priority, seq)
  return (5 - priority) * 4398046511104 + seq  -- 2^42
end

local function priority_of(wkey)
  local p = tonumber(redis.call('HGET', wkey, 'priority'))
  if p == nil or p < 1 or p > 5 then return 3 end
  return math.floor(p)
end

-- Count an event in this minute's throughput hash ({prefix}:{p}:tp:<minute>, kept 2 h).
-- Counters use pcall, and come after the transition's writes: a damaged counter can
-- never abort a transition halfway (Redis does not roll back a failed script).
local function count_minute(tp, now, field, n)
  local key = tp .. math.floor(now / 60000)
  redis.pcall('HINCRBY', key, field, n)
  redis.pcall('EXPIRE', key, 7200)
end

-- Terminal transition: status, stop time, terminal set, stream entry, counters.
-- `b` holds stats, done, maxlen, tp (the throughput key prefix), and optionally `tally`
-- (a table: counts are added there, for the caller to write once per batch).
-- `attempt` may be given when the caller has read it already.
local function finish(wkey, id, status, now, terminal, b, attempt)
  redis.call('HSET', wkey, 'status', status, 'stop', now)
  redis.call('ZADD', terminal, now, id)
  attempt = attempt or redis.call('HGET', wkey, 'attempt') or '0'
  redis.call('XADD', b.done, 'MAXLEN', '~', b.maxlen, '*',
    'id', id, 'status', status, 'attempt', attempt)
  if b.tally then
    b.tally[status] = (b.tally[status] or 0) + 1
  else
    redis.pcall('HINCRBY', b.stats, status, 1)
    count_minute(b.tp, now, status, 1)
  end
end

-- One wake-up token for a blocked withdrawer (the list is capped at b.wake_cap).
local function wake_one(b)
  redis.call('LPUSH', b.wake, '1')
  redis.call('LTRIM', b.wake, 0, b.wake_cap - 1)
end

-- A failed attempt: retry after backoff while attempts remain, else terminal failure.
-- `b` holds delayed, failure, stats, done, wake, maxlen, wake_cap, backoff_base,
-- backoff_max, jitter. A retry wakes a blocked withdrawer, which then waits for its due
-- time (withdraw's wait hint).
-- Returns the new status.
local function fail_or_retry(wkey, id, now, err, terminal_now, b)
  local attempt = tonumber(redis.call('HGET', wkey, 'attempt')) or 0
  local retries = tonumber(redis.call('HGET', wkey, 'retries')) or 0
  redis.call('HSET', wkey, 'error', err, 'stop', now)
  if (not terminal_now) and attempt <= retries then
    local delay = math.min(b.backoff_max, b.backoff_base * 2 ^ math.max(attempt - 1, 0))
    delay = math.floor(delay / 2 + delay / 2 * b.jitter)
    redis.call('HSET', wkey, 'status', 'queued')
    redis.call('ZADD', b.delayed, now + delay, id)
    redis.pcall('HINCRBY', b.stats, 'retried', 1)
    wake_one(b)
    return 'queued'
  end
  finish(wkey, id, 'failure', now, b.failure, b)
  return 'failure'
end

-- Put a work back in the queue in its place (the sequence number it was queued with).
local function requeue(wkey, id, now, b)
  local number = tonumber(redis.call('HGET', wkey, 'seq')) or redis.call('INCR', b.seq)
  redis.call('HSET', wkey, 'status', 'queued', 'queued_at', now)
  redis.call('ZADD', b.queued, queue_score(priority_of(wkey), number), id)
  wake_one(b)
end

-- A work leased ahead of a free slot (`ahead`) whose lease ran out never started as far
-- as Redis knows: it goes back in its place, its attempt not counted, at most this many
-- times (a work that kills its worker every time it starts must still run out of tries).
local UNSTARTED_MAX = 3

-- Leases that ran out (worker dead, or the timeout backstop): fail or retry each.
-- `b` holds, besides fail_or_retry's, queued and seq.
local function reclaim(running, prefix, now, limit, b)
  local expired = redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    redis.call('ZREM', running, id)
    local wkey = prefix .. id
    local unstarted = false
    if redis.call('HGET', wkey, 'ahead') == '1' then
      redis.call('HDEL', wkey, 'ahead', 'token')
      if redis.call('HINCRBY', wkey, 'unstarted', 1) <= UNSTARTED_MAX then
        unstarted = true
      else
        redis.call('HINCRBY', wkey, 'attempt', 1)  -- too often: count it as run
      end
    end
    if unstarted then
      requeue(wkey, id, now, b)
      redis.pcall('HINCRBY', b.stats, 'unstarted', 1)
    elseif redis.call('EXISTS', wkey) == 1 then
      local attempt = tonumber(redis.call('HGET', wkey, 'attempt')) or 0
      local deadline = tonumber(redis.call('HGET', wkey, 'deadline')) or 0
      local kind, message
      if deadline > 0 and now >= deadline then
        kind = 'timeout'
        message = 'exceeded its timeout of ' .. (redis.call('HGET', wkey, 'timeout') or '?')
          .. ' s (ended by the lease backstop)'
      else
        kind = 'lease'
        message = 'lease expired: the worker stopped renewing it (crashed, killed or disconnected)'
      end
      local err = cjson.encode({kind = kind, message = message, attempt = attempt, time = now / 1000})
      fail_or_retry(wkey, id, now, err, false, b)
      redis.pcall('HINCRBY', b.stats, 'expired', 1)
    end
  end
  return #expired
end

-- Delayed work whose time has come moves to the queue, behind its priority class.
local function promote(delayed, queued, seq, prefix, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local wkey = prefix .. id
    if redis.call('EXISTS', wkey) == 1 then
      local n = redis.call('INCR', seq)  -- first: nothing is written yet if it fails
      redis.call('ZREM', delayed, id)
      redis.call('ZADD', queued, queue_score(priority_of(wkey), n), id)
      redis.call('HSET', wkey, 'queued_at', now, 'seq', n)
    else
      redis.call('ZREM', delayed, id)
    end
  end
  return #due
end

-- Store a caller's changes: delete the fields named in `dels` (space-separated), then
-- HSET the field/value pairs in ARGV from index `first` on.
local function store_fields(wkey, dels, first)
  local names = {}
  for field in string.gmatch(dels, '%S+') do names[#names + 1] = field end
  if #names > 0 then redis.call('HDEL', wkey, unpack(names)) end
  if #ARGV >= first then redis.call('HSET', wkey, unpack(ARGV, first)) end
end

-- Remove a work from the results indexes it is in (the index keys, under ix_prefix, are
-- listed in its `ix` field by the indexer) and forget them. Status sets are not touched.
local function unindex(wkey, id, ix_prefix)
  local raw = redis.call('HGET', wkey, 'ix')
  if not raw then return end
  local ok, names = pcall(cjson.decode, raw)
  if ok and type(names) == 'table' then
    for _, name in ipairs(names) do redis.call('ZREM', ix_prefix .. name, id) end
  end
  redis.call('HDEL', wkey, 'ix')
end
