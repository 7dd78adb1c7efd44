-- expire: enforce a pipeline's results retention policy, oldest first, a bounded batch
-- per call. A result is dropped when it stopped before now - max_age_s, or when the
-- pipeline holds more than max_count results (the oldest go). Every drop is counted in
-- stats: `dropped` in total and `dropped:<status>`; nothing else removes results.
-- KEYS[1] {prefix}:{p}:success   ZSET
-- KEYS[2] {prefix}:{p}:failure   ZSET
-- KEYS[3] {prefix}:{p}:cancelled ZSET
-- KEYS[4] {prefix}:{p}:stats     HASH
-- KEYS[5] {prefix}:{p}:retention HASH  max_age_s, max_count (absent: no limit)
-- ARGV[1] work key prefix ({prefix}:{p}:work:)
-- ARGV[2] results index key prefix ({prefix}:{p}:ix:)
-- ARGV[3] limit: most results dropped by this call
-- Returns: {dropped, more}: results dropped, and 1 if the policy still wants more dropped
-- Errors: none
local stats, retention = KEYS[4], KEYS[5]
local statuses = {success = KEYS[1], failure = KEYS[2], cancelled = KEYS[3]}
local prefix, ix_prefix, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
--@include lifecycle

local policy = redis.call('HMGET', retention, 'max_age_s', 'max_count')
local max_age_s, max_count = tonumber(policy[1]), tonumber(policy[2])
if not max_age_s and not max_count then return {0, 0} end

local cutoff = max_age_s and (now_ms() - max_age_s * 1000) or nil
local total = 0
for _, key in pairs(statuses) do total = total + redis.call('ZCARD', key) end
local excess = max_count and math.max(0, total - max_count) or 0

-- The oldest result over the three status sets, if the policy drops it.
local function oldest()
  local pick_status, pick_id, pick_stop
  for status, key in pairs(statuses) do
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[1] and (pick_stop == nil or tonumber(head[2]) < pick_stop) then
      pick_status, pick_id, pick_stop = status, head[1], tonumber(head[2])
    end
  end
  if pick_id and (excess > 0 or (cutoff and pick_stop < cutoff)) then
    return pick_status, pick_id
  end
  return nil
end

local dropped = 0
while dropped < limit do
  local status, id = oldest()
  if not status then return {dropped, 0} end
  local wkey = prefix .. id
  unindex(wkey, id, ix_prefix)
  redis.call('ZREM', statuses[status], id)
  redis.call('DEL', wkey)
  redis.pcall('HINCRBY', stats, 'dropped', 1)
  redis.pcall('HINCRBY', stats, 'dropped:' .. status, 1)
  excess = excess - 1
  dropped = dropped + 1
end
return {dropped, oldest() and 1 or 0}
