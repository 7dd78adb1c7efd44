-- delete: remove a work record and its id from every set and results index, whatever
-- its status.
-- A running work's worker finds it gone on its next renew or completion (-1).
-- KEYS[1] {prefix}:{p}:work:<id> HASH
-- KEYS[2] {prefix}:{p}:queued    ZSET
-- KEYS[3] {prefix}:{p}:running   ZSET
-- KEYS[4] {prefix}:{p}:delayed   ZSET
-- KEYS[5] {prefix}:{p}:success   ZSET
-- KEYS[6] {prefix}:{p}:failure   ZSET
-- KEYS[7] {prefix}:{p}:cancelled ZSET
-- KEYS[8] {prefix}:{p}:stats     HASH
-- ARGV[1] id
-- ARGV[2] results index key prefix ({prefix}:{p}:ix:)
-- Returns: the status the work had ('unknown' for a record without one)
-- Errors: -1 NOT_FOUND
local wkey, stats = KEYS[1], KEYS[8]
local id, ix_prefix = ARGV[1], ARGV[2]
--@include lifecycle

if redis.call('EXISTS', wkey) == 0 then return -1 end
local status = redis.call('HGET', wkey, 'status') or 'unknown'
unindex(wkey, id, ix_prefix)
for k = 2, 7 do redis.call('ZREM', KEYS[k], id) end
redis.call('DEL', wkey)
redis.pcall('HINCRBY', stats, 'deleted', 1)
return status
