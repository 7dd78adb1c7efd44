-- update: store changed fields of a work without changing its state. A running work
-- needs the caller's lease token (progress saves); other works are edited in place, and
-- a queued work whose priority changed moves to its new class, keeping its FIFO place.
-- An edit of a finished work appends a done-stream entry so the results index sees it.
-- KEYS[1] {prefix}:{p}:work:<id> HASH
-- KEYS[2] {prefix}:{p}:queued    ZSET
-- KEYS[3] {prefix}:{p}:done      STREAM
-- ARGV[1] id
-- ARGV[2] token ('' when the caller holds no lease)
-- ARGV[3] status the caller believes the work has (a status change is not an update)
-- ARGV[4] stream_maxlen: approximate cap of the done stream
-- ARGV[5] space-separated fields to delete first (fields the user set to None)
-- ARGV[6..] field/value pairs (body, results, products, plots, priority, ...)
-- Returns: the work's status
-- Errors: -1 NOT_FOUND; -2 LEASE_LOST (a token was given and is not the current running
--   lease, or the work runs under another lease); -3 BAD_STATUS (the stored status is not
--   ARGV[3]; nothing written)
local wkey, queued, done = KEYS[1], KEYS[2], KEYS[3]
local id, token, expected, maxlen = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
--@include lifecycle

local rec = redis.call('HMGET', wkey, 'status', 'token')
local status = rec[1]
if not status then return -1 end
if (status == 'running' or token ~= '') and (status ~= 'running' or rec[2] ~= token) then
  redis.pcall('HINCRBY', wkey, 'rejected', 1)
  return -2
end
if status ~= expected then return -3 end
store_fields(wkey, ARGV[5], 6)
if status == 'success' or status == 'failure' or status == 'cancelled' then
  redis.call('XADD', done, 'MAXLEN', '~', maxlen, '*', 'id', id, 'status', status,
    'attempt', redis.call('HGET', wkey, 'attempt') or '0', 'edit', '1')
end
local score = redis.call('ZSCORE', queued, id)
if score then
  local seqno = tonumber(score) % 4398046511104
  redis.call('ZADD', queued, queue_score(priority_of(wkey), seqno), id)
end
return status
