-- deposit: queue new works (one or many); an id that already exists is left unchanged.
-- KEYS[1] {prefix}:{p}:queued   ZSET
-- KEYS[2] {prefix}:{p}:delayed  ZSET
-- KEYS[3] {prefix}:{p}:seq      STRING
-- KEYS[4] {prefix}:{p}:stats    HASH
-- KEYS[5] {prefix}:{p}:wake     LIST
-- ARGV[1] work key prefix ({prefix}:{p}:work:), records derive their key from it
-- ARGV[2] delay_ms: 0 queues now, > 0 parks the works in delayed until then
-- ARGV[3] wake_cap: most wake-up tokens kept in the wake list
-- ARGV[4] throughput key prefix ({prefix}:{p}:tp:), per-minute counters derive from it
-- ARGV[5..] per work: id, priority, n_fields, then n_fields field/value pairs
-- Returns: array, per work: 1 queued (or delayed), 0 already existed
-- Errors: none (invalid input is rejected by the client before the call)
local queued, delayed, seq, stats, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix = ARGV[1]
local delay_ms = tonumber(ARGV[2])
local wake_cap = tonumber(ARGV[3])
local tp = ARGV[4]
--@include lifecycle

local now = now_ms()
local out = {}
local added = 0
local ids = {}  -- {score, id, ...} for one ZADD at the end
-- First which works are new (an id given twice counts once), then their sequence numbers
-- in one INCRBY before any write: nothing is written if it fails.
local new, seen = {}, {}
local i = 5
while i <= #ARGV do
  local id = ARGV[i]
  new[i] = not seen[id] and redis.call('EXISTS', prefix .. id) == 0
  seen[id] = true
  if new[i] then added = added + 1 end
  i = i + 3 + 2 * tonumber(ARGV[i + 2])
end
local number = (delay_ms == 0 and added > 0) and (redis.call('INCRBY', seq, added) - added)
i = 5
while i <= #ARGV do
  local id, priority, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if not new[i] then
    out[#out + 1] = 0
  else
    local fields = {'status', 'queued', 'attempt', 0, 'priority', priority}
    for j = i + 3, i + 2 + 2 * n do fields[#fields + 1] = ARGV[j] end
    if number then  -- its place in the queue, kept for a release to restore
      number = number + 1
      fields[#fields + 1] = 'seq'
      fields[#fields + 1] = number
      fields[#fields + 1] = 'queued_at'
      fields[#fields + 1] = now
      ids[#ids + 1] = queue_score(priority, number)
    else
      ids[#ids + 1] = now + delay_ms
    end
    ids[#ids + 1] = id
    redis.call('HSET', prefix .. id, unpack(fields))
    out[#out + 1] = 1
  end
  i = i + 3 + 2 * n
end
if added > 0 then
  redis.call('ZADD', number and queued or delayed, unpack(ids))
end
if added > 0 then
  redis.pcall('HINCRBY', stats, 'deposited', added)
  count_minute(tp, now, 'deposited', added)
  -- Delayed works wake one withdrawer too: it learns when the first is due.
  local tokens = {}
  for _ = 1, (delay_ms == 0) and math.min(added, wake_cap) or 1 do tokens[#tokens + 1] = '1' end
  redis.call('LPUSH', wake, unpack(tokens))
  redis.call('LTRIM', wake, 0, wake_cap - 1)
end
return out
