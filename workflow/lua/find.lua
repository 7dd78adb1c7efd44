-- find: search one pipeline's results, newest first (read-only).
-- A query is an AND of groups; a group is an OR of sorted sets (a status set, or one
-- results index per field value), each scored by stop time. The group with the fewest
-- entries in the stop-time range drives: its sets are merged newest first, and each entry
-- is checked against the other groups (ZSCORE, O(1)) and the creation range (HGET).
-- Cost: O(sum over sets of log n) to choose, then O(entries examined), at most `budget`;
-- a call that runs out of budget returns a cursor to continue from.
-- KEYS[1..n] the sets of every group, in group order (sizes in ARGV[11..])
-- ARGV[1]  work key prefix ({prefix}:{p}:work:)
-- ARGV[2]  mode: 'find' (records) or 'count'
-- ARGV[3]  newest stop time, ms, inclusive ('+inf': none)
-- ARGV[4]  oldest stop time, ms, inclusive ('-inf': none)
-- ARGV[5]  cursor id ('': none): entries stopped exactly at ARGV[3] with an id >= this
--          one were returned by an earlier call and are skipped
-- ARGV[6]  limit: most records returned (find)
-- ARGV[7]  budget: most entries examined by this call
-- ARGV[8]  oldest creation time, ms ('': none); ARGV[9] newest creation time ('': none)
-- ARGV[10] '1' if the first group's sets are disjoint (the status sets), else '0'
-- ARGV[11..] the number of sets in each group
-- Returns: find: {more, next_stop, next_id, id1, fields1, id2, fields2, ...} newest first,
--   fields as HGETALL; count: {more, next_stop, next_id, n}. more is 1 when a further call
--   from the cursor (next_stop, next_id) may find more.
-- Errors: none
local prefix, mode = ARGV[1], ARGV[2]
local max, min = ARGV[3], ARGV[4]
local cursor_id = ARGV[5]
local cursor_stop = tonumber(max)
local limit, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local created_min, created_max = tonumber(ARGV[8]), tonumber(ARGV[9])
local first_disjoint = ARGV[10] == '1'
local CHUNK = 200

local groups, k = {}, 1
for g = 11, #ARGV do
  local sets = {}
  for _ = 1, tonumber(ARGV[g]) do sets[#sets + 1] = KEYS[k]; k = k + 1 end
  groups[#groups + 1] = sets
end

-- The driver: the group with the fewest entries in range.
local driver, best = 1, nil
for g, sets in ipairs(groups) do
  local n = 0
  for _, key in ipairs(sets) do n = n + redis.call('ZCOUNT', key, min, max) end
  if best == nil or n < best then driver, best = g, n end
end

-- Counting needs no scan when nothing but one group's disjoint sets constrains it.
if mode == 'count' and #groups == 1 and cursor_id == '' and not created_min
    and not created_max and (#groups[1] == 1 or first_disjoint) then
  return {0, '', '', best}
end

local iters = {}
for _, key in ipairs(groups[driver]) do
  iters[#iters + 1] = {key = key, off = 0, buf = {}, pos = 1, last = false}
end

local function head(it)
  if it.pos > #it.buf then
    if it.last then return nil end
    it.buf = redis.call('ZREVRANGEBYSCORE', it.key, max, min, 'WITHSCORES', 'LIMIT', it.off, CHUNK)
    it.off = it.off + #it.buf / 2
    it.pos = 1
    it.last = #it.buf < CHUNK * 2
    if #it.buf == 0 then return nil end
  end
  return it.buf[it.pos], tonumber(it.buf[it.pos + 1]), it.buf[it.pos + 1]
end

-- The newest entry over all driver sets (ties: the greater id first, as ZREVRANGEBYSCORE).
local function pop()
  local pick, pid, pscore, praw
  for _, it in ipairs(iters) do
    local id, score, raw = head(it)
    if id and (pick == nil or score > pscore or (score == pscore and id > pid)) then
      pick, pid, pscore, praw = it, id, score, raw
    end
  end
  if pick then pick.pos = pick.pos + 2 end
  return pid, pscore, praw
end

local function in_group(sets, id)
  for _, key in ipairs(sets) do
    if redis.call('ZSCORE', key, id) then return true end
  end
  return false
end

local function matches(id)
  for g, sets in ipairs(groups) do
    if g ~= driver and not in_group(sets, id) then return false end
  end
  if created_min or created_max then
    local c = tonumber(redis.call('HGET', prefix .. id, 'creation'))
    if not c then return false end
    if created_min and c < created_min then return false end
    if created_max and c > created_max then return false end
  end
  return true
end

local out = {1, '', ''}
local found, examined, previous = 0, 0, nil
local function reply(more)
  out[1] = more
  if mode == 'count' then out[4] = found end
  return out
end
while true do
  if examined >= budget then return reply(1) end  -- the cursor is the last examined
  local id, score, raw = pop()
  if not id then return reply(0) end
  if id ~= previous then  -- the same id in two sets of the driver group
    previous = id
    -- Skipped entries (seen by an earlier call) do not use the budget: a budget spent on
    -- them would hand back the same cursor forever. They share one ms, so they are few.
    if not (cursor_id ~= '' and score == cursor_stop and id >= cursor_id) then
      examined = examined + 1
      if matches(id) then
        found = found + 1
        if mode == 'find' then
          out[#out + 1] = id
          out[#out + 1] = redis.call('HGETALL', prefix .. id)
        end
      end
      out[2], out[3] = raw, id
      if mode == 'find' and found >= limit then return reply(1) end
    end
  end
end
