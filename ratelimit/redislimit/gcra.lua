-- One request against a token bucket, kept as GCRA: KEYS[1] holds
-- "<tat> <interval> <burst>", the theoretical arrival time (µs of Redis
-- TIME) and the parameters it was written with. The bucket holds
-- burst - (tat - now) / interval tokens; a request is allowed while at
-- least one is left, and takes it. A refused request changes nothing (as
-- golang.org/x/time/rate, which ratelimit.Memory uses).
--
-- ARGV[1]: interval, µs per token (may be fractional); ARGV[2]: burst.
-- Returns {1 if allowed else 0, tat - now after this call in µs, as a
-- string: Lua numbers would be truncated to integers on the way out}.

-- Redis 7 replicates effects by default; older ones need this before TIME.
if redis.replicate_commands then redis.replicate_commands() end

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
-- Redis's clock, not the nodes': theirs may disagree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local tat = now
local v = redis.call('GET', KEYS[1])
if v then
  local a, i, b = string.match(v, '^(%S+) (%S+) (%S+)$')
  a, i, b = tonumber(a), tonumber(i), tonumber(b)
  if a and i and b and i > 0 then
    if i == interval and b == burst then
      if a > now then tat = a end
    else
      -- The limit changed (a per-app override): keep the tokens left,
      -- capped at the new burst, as ratelimit.Memory does.
      local tokens = b - math.max(a - now, 0) / i
      if tokens < burst then tat = now + (burst - tokens) * interval end
    end
  end
end

-- Refused unless one token is left; 0.001 µs of slack for float rounding.
if tat - now > (burst - 1) * interval + 0.001 then
  return {0, string.format('%.17g', tat - now)}
end

tat = tat + interval
-- The key expires when the bucket is full again: forgetting it then
-- forgets nothing.
local ttl = math.ceil((tat - now) / 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.17g %.17g %d', tat, interval, burst), 'PX', ttl)
return {1, string.format('%.17g', tat - now)}
