-- renew: extend the leases of running works held by the caller (heartbeat).
-- KEYS[1] {prefix}:{p}:running  ZSET
-- ARGV[1] work key prefix ({prefix}:{p}:work:)
-- ARGV[2] lease_ms: new lease length from now
-- ARGV[3] grace_ms: a lease never runs past start + timeout + grace_ms (timeout backstop)
-- ARGV[4..] pairs: id, token
-- Returns: array, per pair: 1 renewed, -1 NOT_FOUND, -2 LEASE_LOST (another attempt, or
--   finished, or past start + timeout + grace: the backstop will reclaim it), -4 CANCELLED
--   (a user cancelled it: stop the work)
-- Errors: none
local running = KEYS[1]
local prefix = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local grace_ms = tonumber(ARGV[3])
--@include lifecycle

local now = now_ms()
local out = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local rec = redis.call('HMGET', prefix .. id, 'status', 'token', 'deadline')
  if not rec[1] then
    out[#out + 1] = -1
  elseif rec[2] ~= token then
    out[#out + 1] = -2
  elseif rec[1] == 'cancelled' then
    out[#out + 1] = -4
  elseif rec[1] ~= 'running' then
    out[#out + 1] = -2
  else
    local cutoff = (tonumber(rec[3]) or now) + grace_ms
    if now >= cutoff then
      out[#out + 1] = -2
    else
      redis.call('ZADD', running, 'XX', math.min(now + lease_ms, cutoff), id)
      out[#out + 1] = 1
    end
  end
end
return out
