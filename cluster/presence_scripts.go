package cluster

import "github.com/redis/go-redis/v9"

// The Lua scripts make each change to Redis atomic, so that two nodes (or
// two reapers) never both see a channel become occupied, a user become the
// first or last, or one dead entry removed.
//
// Keys of one channel: S (hash: node:socket → user id, one field per
// subscribed socket), U (hash: user id → sockets in the channel), I (hash:
// user id → user_info). C is the app's occupied channels (zset, score 0,
// so names can be listed by prefix). N is a node's entries (set): what the
// others must undo if it dies.

// joinScript: KEYS S U I C N; ARGV field, user, info, max, channel, entry,
// force. Returns {added, occupied, count, first, members...} or {-1} when
// the channel is full.
var joinScript = redis.NewScript(`
local uid = ARGV[2]
if uid ~= '' and ARGV[7] ~= '1' and redis.call('HEXISTS', KEYS[2], uid) == 0
   and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then
  return {-1}
end
local added = redis.call('HSET', KEYS[1], ARGV[1], uid)
redis.call('SADD', KEYS[5], ARGV[6])
redis.call('ZADD', KEYS[4], 0, ARGV[5])
local count = redis.call('HLEN', KEYS[1])
local first = 0
if added == 1 and uid ~= '' then
  if redis.call('HINCRBY', KEYS[2], uid, 1) == 1 then
    first = 1
    redis.call('HSET', KEYS[3], uid, ARGV[3])
  end
end
local occupied = 0
if added == 1 and count == 1 then occupied = 1 end
local res = {added, occupied, count, first}
if uid ~= '' then
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all do res[#res + 1] = all[i] end
end
return res
`)

// leaveScript: KEYS S U I C N; ARGV field, user, channel, entry. Returns
// {removed, vacated, count, last}; removed is 0 when the socket was not
// there (already left, or reaped by another node): nothing to report.
var leaveScript = redis.NewScript(`
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[4])
if removed == 0 then return {0, 0, redis.call('HLEN', KEYS[1]), 0} end
local last = 0
local uid = ARGV[2]
if uid ~= '' then
  if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
    redis.call('HDEL', KEYS[2], uid)
    redis.call('HDEL', KEYS[3], uid)
    last = 1
  end
end
local count = redis.call('HLEN', KEYS[1])
local vacated = 0
if count == 0 then
  vacated = 1
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
end
return {1, vacated, count, last}
`)

// signInScript: KEYS users-of-app N; ARGV user, entry. Returns {added,
// first}.
var signInScript = redis.NewScript(`
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return {0, 0} end
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return {1, 1} end
return {1, 0}
`)

// signOutScript: KEYS users-of-app N; ARGV user, entry. Returns {removed,
// last}.
var signOutScript = redis.NewScript(`
if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then return {0, 0} end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, 1}
end
return {1, 0}
`)

// heartbeatScript: KEYS nodes; ARGV id. Stamps the node with Redis' clock
// (nodes' clocks may disagree). Returns 1 when the node was not listed: it
// is new, or it was reaped (or Redis lost its data) and must resync.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now, ARGV[1])
`)

// claimScript: KEYS nodes reaping; ARGV timeout-ms, self. Moves nodes
// silent for longer than the timeout to reaping, and takes over reaps
// whose reaper went silent too; returns the ids this caller now owns.
var claimScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = now - tonumber(ARGV[1])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', before, 'LIMIT', 0, 16)) do
  if id ~= ARGV[2] then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], now, id)
    out[#out + 1] = id
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', before, 'LIMIT', 0, 16)) do
  if id ~= ARGV[2] then
    redis.call('ZADD', KEYS[2], now, id)
    out[#out + 1] = id
  end
end
return out
`)

// reapingScript: KEYS nodes reaping N; ARGV id. Before each batch of a
// reap: 0 when the node came back (its heartbeat is listed again: stop),
// else renews the claim and returns 1. When the node's set is empty it
// ends the reap and returns 2.
var reapingScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 2
end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return 1
`)
