"""The Lua scripts: each is one atomic step in Redis, one round trip from a replica.

Times come from Redis (`TIME`), never from a replica's clock, so replicas whose
clocks disagree still agree on who is alive and how many tokens are left.
"""

# KEYS: members (zset: member -> expiry ms), leader, epoch, watchlist version
# ARGV: member, ttl ms, "1" to hold or take the leader lease, a fresh epoch value
# Returns {members, is leader (0/1), epoch, version}.
TICK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local leader = 0
if ARGV[3] == '1' then
  local cur = redis.call('GET', KEYS[2])
  if (not cur) or cur == ARGV[1] then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
    leader = 1
  end
end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  redis.call('SET', KEYS[3], ARGV[4])
  epoch = ARGV[4]
end
local version = redis.call('GET', KEYS[4]) or '0'
return {members, leader, epoch, version}
"""

# KEYS: fencing counter, members, then one lease key per record
# ARGV: member, ttl ms
# A lease is "member|n" with n from the counter: a fresh acquisition always gets a
# larger token than any before it. A lease whose holder's heartbeat has expired is
# taken at once (that holder stopped trusting it before its heartbeat ran out).
# Returns one entry per lease key: the token this member holds now, or "" when
# another live member holds it.
LEASES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1] .. '|'
local ttl = ARGV[2]
local out = {}
for i = 3, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, #member) == member then
    redis.call('PEXPIRE', KEYS[i], ttl)
    out[#out + 1] = cur
  else
    local free = not cur
    if cur then
      local holder = string.match(cur, '^(.*)|[0-9]+$')
      local alive = holder and tonumber(redis.call('ZSCORE', KEYS[2], holder))
      free = (not alive) or alive <= now
    end
    if free then
      local tok = member .. redis.call('INCR', KEYS[1])
      redis.call('SET', KEYS[i], tok, 'PX', ttl)
      out[#out + 1] = tok
    else
      out[#out + 1] = ''
    end
  end
end
return out
"""

# KEYS: lease keys; ARGV: member. Deletes the leases this member holds.
RELEASE = """
local member = ARGV[1] .. '|'
local n = 0
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, #member) == member then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""

# KEYS: members, leader; ARGV: member. Leave the cluster at once (SIGTERM).
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# The cluster's token bucket, one hash: tokens, stamp, pause_until, factor, throttled_at.
# KEYS: bucket; ARGV: rate, burst, tokens wanted, recovery seconds
# Returns {granted, seconds to wait before asking again, rate in force} (numbers as text).
_BUCKET_STATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local recovery = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'pause_until', 'factor', 'throttled_at')
local tokens = tonumber(h[1]) or burst
local stamp = tonumber(h[2]) or now
local pause_until = tonumber(h[3]) or 0
local factor = 1
local throttled_at = tonumber(h[5])
if throttled_at then
  local since = math.max(0, now - math.max(throttled_at, pause_until))
  factor = math.min(1, (tonumber(h[4]) or 1) * 2 ^ (since / recovery))
end
"""

TAKE = (
    _BUCKET_STATE
    + """
if now < pause_until then
  return {'0', tostring(pause_until - now), tostring(rate * factor)}
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate * factor)
local granted = math.min(tonumber(ARGV[3]), math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if granted == 0 then wait = (1 - tokens) / (rate * factor) end
return {tostring(granted), tostring(wait), tostring(rate * factor)}
"""
)

# KEYS: bucket; ARGV: rate, burst, (unused), recovery, pause seconds, slowest factor
# Returns 1 when this throttle started a new pause (and halved the rate), else 0.
THROTTLE = (
    _BUCKET_STATE
    + """
local pause = tonumber(ARGV[5])
if now < pause_until then
  local untl = math.max(pause_until, now + pause)
  redis.call('HSET', KEYS[1], 'pause_until', tostring(untl), 'stamp', tostring(untl))
  return 0
end
local f = math.max(tonumber(ARGV[6]), factor / 2)
redis.call('HSET', KEYS[1], 'factor', tostring(f), 'throttled_at', tostring(now),
  'pause_until', tostring(now + pause), 'tokens', '0', 'stamp', tostring(now + pause))
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""
)
