-- update: store changed fields of a work without changing its state. A running work
-- needs the caller's lease token (progress saves); other works are edited in place, and
-- a queued work whose priority changed moves to its new class, keeping its FIFO place.
-- KEYS[1] {prefix}:{p}:work:<id> HASH
-- KEYS[2] {prefix}:{p}:queued    ZSET
-- ARGV[1] id
-- ARGV[2] token ('' when the caller holds no lease)
-- ARGV[3] status the caller believes the work has (a status change is not an update)
-- ARGV[4..] field/value pairs (body, results, products, plots, priority, ...)
-- Returns: the work's status
-- Errors: -1 NOT_FOUND; -2 LEASE_LOST (running, and the token is not the current one);
--   -3 BAD_STATUS (the stored status is not ARGV[3]; nothing written)
local wkey, queued = KEYS[1], KEYS[2]
local id, token, expected = ARGV[1], ARGV[2], ARGV[3]
--@include lifecycle

local rec = redis.call('HMGET', wkey, 'status', 'token')
local status = rec[1]
if not status then return -1 end
if status == 'running' and rec[2] ~= token then
  redis.call('HINCRBY', wkey, 'rejected', 1)
  return -2
end
if status ~= expected then return -3 end
if #ARGV >= 4 then redis.call('HSET', wkey, unpack(ARGV, 4)) end
local score = redis.call('ZSCORE', queued, id)
if score then
  local seqno = tonumber(score) % 4398046511104
  redis.call('ZADD', queued, queue_score(priority_of(wkey), seqno), id)
end
return status
