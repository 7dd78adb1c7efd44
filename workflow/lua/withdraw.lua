-- withdraw: lease up to `count` queued works, highest priority first, FIFO within one.
-- First reclaims expired leases and promotes due delayed works (bounded), so recovery
-- never depends on a separate daemon.
-- KEYS[1] {prefix}:{p}:queued   ZSET
-- KEYS[2] {prefix}:{p}:running  ZSET
-- KEYS[3] {prefix}:{p}:delayed  ZSET
-- KEYS[4] {prefix}:{p}:failure  ZSET
-- KEYS[5] {prefix}:{p}:seq      STRING
-- KEYS[6] {prefix}:{p}:stats    HASH
-- KEYS[7] {prefix}:{p}:done     STREAM
-- KEYS[8] {prefix}:{p}:wake     LIST
-- KEYS[9] {prefix}:{p}:paused   STRING (exists while the pipeline is paused)
-- ARGV[1]  work key prefix ({prefix}:{p}:work:)
-- ARGV[2]  count: most works to lease
-- ARGV[3]  lease_ms: liveness lease length
-- ARGV[4]  grace_ms: the timeout backstop ends an attempt at start + timeout + grace_ms
-- ARGV[5]  token_base: random string, unique per call; tokens are token_base:i
-- ARGV[6]  scan_limit: most queued ids examined (bounds the cost of filters)
-- ARGV[7]  recover_limit: most expired leases reclaimed and delayed works promoted
-- ARGV[8]  backoff_base_ms, ARGV[9] backoff_max_ms, ARGV[10] jitter in [0, 1)
-- ARGV[11] stream_maxlen: approximate cap of the done stream
-- ARGV[12] priority filter (0: any)
-- ARGV[13] site filter, ARGV[14] user filter, ARGV[15] parent filter ('' : any)
-- ARGV[16] tags filter: JSON list ('' : any); ARGV[17] tags mode: 'any' | 'all'
-- ARGV[18] event filter: JSON list of ints ('' : any), matches works sharing one
-- ARGV[19] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[20] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- ARGV[21] start_now: how many of the works leased start at once (their attempt counts
--   now); the rest are leased ahead of a free slot: marked `ahead`, their attempt counted
--   when they finish, and handed back uncounted if their lease expires first
-- Returns: {wait_ms, id1, fields1, id2, fields2, ...}; fields are HGETALL of the record
--   after the transition. wait_ms is 0 when works are returned, else the ms until the
--   next delayed work is due or lease expires (-1: nothing pending). A paused pipeline
--   hands out nothing (its recovery still runs) and returns {-1}.
-- Errors: none
local queued, running, delayed, failure = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq, stats, done, wake, paused = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local prefix = ARGV[1]
local count = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local grace_ms = tonumber(ARGV[4])
local token_base = ARGV[5]
local scan_limit = tonumber(ARGV[6])
local recover_limit = tonumber(ARGV[7])
local b = {delayed = delayed, failure = failure, stats = stats, done = done,
  backoff_base = tonumber(ARGV[8]), backoff_max = tonumber(ARGV[9]),
  jitter = tonumber(ARGV[10]), maxlen = tonumber(ARGV[11]),
  wake = wake, wake_cap = tonumber(ARGV[19]), tp = ARGV[20], queued = queued, seq = seq}
local start_now = tonumber(ARGV[21]) or count
local want_priority = tonumber(ARGV[12])
local want_site, want_user, want_parent = ARGV[13], ARGV[14], ARGV[15]
local want_tags = ARGV[16] ~= '' and cjson.decode(ARGV[16]) or nil
local tags_all = ARGV[17] == 'all'
local want_events = ARGV[18] ~= '' and cjson.decode(ARGV[18]) or nil
--@include lifecycle

local now = now_ms()
reclaim(running, prefix, now, recover_limit, b)
promote(delayed, queued, seq, prefix, now, recover_limit)
if redis.call('EXISTS', paused) == 1 then return {-1} end

local filtered = want_site ~= '' or want_user ~= '' or want_parent ~= ''
  or want_tags ~= nil or want_events ~= nil

local function list_of(wkey, field)
  local raw = redis.call('HGET', wkey, field)
  if not raw then return {} end
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' then return value end
  return {}
end

local function matches(wkey)
  if want_site ~= '' and redis.call('HGET', wkey, 'site') ~= want_site then return false end
  if want_user ~= '' and redis.call('HGET', wkey, 'user') ~= want_user then return false end
  if want_parent ~= '' and redis.call('HGET', wkey, 'parent') ~= want_parent then
    return false
  end
  if want_tags then
    local have = {}
    for _, t in ipairs(list_of(wkey, 'tags')) do have[t] = true end
    local hits = 0
    for _, t in ipairs(want_tags) do if have[t] then hits = hits + 1 end end
    if tags_all and hits < #want_tags then return false end
    if (not tags_all) and hits == 0 then return false end
  end
  if want_events then
    local have = {}
    for _, e in ipairs(list_of(wkey, 'event')) do have[e] = true end
    local hit = false
    for _, e in ipairs(want_events) do if have[e] then hit = true end end
    if not hit then return false end
  end
  return true
end

local lo, hi = '-inf', '+inf'
if want_priority > 0 then
  lo = queue_score(want_priority, 0)
  hi = '(' .. queue_score(want_priority - 1, 0)
end

local picked, info = {}, {}
local offset = 0
local examined = 0
while #picked < count and examined < scan_limit do
  local chunk = filtered and 100 or (count - #picked)
  local ids = redis.call('ZRANGEBYSCORE', queued, lo, hi, 'LIMIT', offset, chunk)
  if #ids == 0 then break end
  offset = offset + #ids
  for _, id in ipairs(ids) do
    local wkey = prefix .. id
    examined = examined + 1
    local rec = redis.call('HMGET', wkey, 'status', 'timeout', 'attempt')
    if not rec[1] and redis.call('EXISTS', wkey) == 0 then
      redis.call('ZREM', queued, id)  -- a record deleted behind the scripts' back
      offset = offset - 1
    elseif (not filtered) or matches(wkey) then
      picked[#picked + 1] = id
      info[#picked] = rec
    end
    if #picked >= count or examined >= scan_limit then break end
  end
end

if #picked == 0 then
  local wait = -1
  local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if nxt[2] then wait = math.max(1, tonumber(nxt[2]) - now) end
  local exp = redis.call('ZRANGE', running, 0, 0, 'WITHSCORES')
  if exp[2] then
    local w = math.max(1, tonumber(exp[2]) - now)
    if wait < 0 or w < wait then wait = w end
  end
  return {wait}
end

redis.call('ZREM', queued, unpack(picked))
local out, leases = {0}, {}
for i, id in ipairs(picked) do
  local wkey = prefix .. id
  local timeout_s = tonumber(info[i][2])
  if not timeout_s or timeout_s ~= timeout_s or timeout_s < 1 or timeout_s > 259200 then
    timeout_s = 3600  -- a damaged copy must not switch the timeout backstop off
  end
  local deadline = now + timeout_s * 1000
  local ahead = i > start_now
  local attempt = (tonumber(info[i][3]) or 0) + (ahead and 0 or 1)
  redis.call('HSET', wkey, 'status', 'running', 'attempt', attempt, 'start', now,
    'token', token_base .. ':' .. i, 'deadline', deadline, 'ahead', ahead and '1' or '0')
  redis.call('HDEL', wkey, 'stop')
  leases[#leases + 1] = math.min(now + lease_ms, deadline + grace_ms)
  leases[#leases + 1] = id
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', wkey)
end
redis.call('ZADD', running, unpack(leases))
redis.pcall('HINCRBY', stats, 'withdrawn', #picked)
return out
