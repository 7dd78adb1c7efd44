-- index: put finished works into the results index and acknowledge their completion-stream
-- entries, all in one step: a batch is indexed and acknowledged together, or not at all.
-- Indexing reads the work's record as it is now, so applying an entry twice changes
-- nothing (idempotent by id and attempt), and an entry whose work has since been retried
-- or deleted is only acknowledged. A work with `archive` 0 is deleted instead of kept.
-- KEYS[1] {prefix}:{p}:done      STREAM
-- KEYS[2] {prefix}:{p}:success   ZSET
-- KEYS[3] {prefix}:{p}:failure   ZSET
-- KEYS[4] {prefix}:{p}:cancelled ZSET
-- KEYS[5] {prefix}:{p}:stats     HASH
-- ARGV[1] work key prefix ({prefix}:{p}:work:)
-- ARGV[2] results index key prefix ({prefix}:{p}:ix:); index keys are
--   <prefix><field>:<value>, field one of event, tag, user, site, group
-- ARGV[3] consumer group name
-- ARGV[4], ARGV[5], ... pairs of stream entry id, work id
-- Returns: {indexed, skipped, unarchived}: works now in the index, entries whose work is
--   gone or no longer finished, works deleted because their `archive` is 0
-- Errors: none
local done, stats = KEYS[1], KEYS[5]
local terminal = {success = KEYS[2], failure = KEYS[3], cancelled = KEYS[4]}
local prefix, ix_prefix, group = ARGV[1], ARGV[2], ARGV[3]
--@include lifecycle

local function json_list(raw)
  if not raw then return {} end
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' then return value end
  return {}
end

-- The index key suffixes of a record, from its filter copies. Events are read as digits,
-- not through cjson (whose numbers are doubles), so every integer is written exactly.
local function names_of(wkey)
  local names = {}
  local rec = redis.call('HMGET', wkey, 'event', 'tags', 'user', 'site', 'group')
  for e in string.gmatch(rec[1] or '', '-?%d+') do names[#names + 1] = 'event:' .. e end
  for _, t in ipairs(json_list(rec[2])) do
    if type(t) == 'string' then names[#names + 1] = 'tag:' .. t end
  end
  if rec[3] then names[#names + 1] = 'user:' .. rec[3] end
  if rec[4] then names[#names + 1] = 'site:' .. rec[4] end
  for _, g in ipairs(json_list(rec[5])) do
    if type(g) == 'string' then names[#names + 1] = 'group:' .. g end
  end
  return names
end

local indexed, skipped, unarchived = 0, 0, 0
for i = 4, #ARGV, 2 do
  local entry, id = ARGV[i], ARGV[i + 1]
  local wkey = prefix .. id
  local status = redis.call('HGET', wkey, 'status')
  local set = status and terminal[status]
  local stop = set and redis.call('ZSCORE', set, id)
  if not stop then
    skipped = skipped + 1  -- deleted, or retried since: a later entry will index it
  elseif redis.call('HGET', wkey, 'archive') == '0' then
    unindex(wkey, id, ix_prefix)
    redis.call('ZREM', set, id)
    redis.call('DEL', wkey)
    redis.pcall('HINCRBY', stats, 'unarchived', 1)
    unarchived = unarchived + 1
  else
    unindex(wkey, id, ix_prefix)
    local names = names_of(wkey)
    for _, name in ipairs(names) do redis.call('ZADD', ix_prefix .. name, stop, id) end
    redis.call('HSET', wkey, 'ix', cjson.encode(names))
    indexed = indexed + 1
  end
  redis.call('XACK', done, group, entry)
end
return {indexed, skipped, unarchived}
