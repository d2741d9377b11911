"""The Lua scripts of the Redis store: each one atomic step, one round trip."""

# KEYS: rec, lease, version, changes, ids, claims, trim floor, tombstones
# ARGV: id, meta or "", doc or "", fencing token or "", member, claim ttl s, claims...
# Returns {1, claims held}; {0} when the fencing token is not the lease's any more; {-1}
# when the record was removed meanwhile (by another replica); {-2} when it was retired.
SAVE = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then return {0} end
if redis.call('HEXISTS', KEYS[8], ARGV[1]) == 1 then return {-2} end
if ARGV[2] == '' and redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return {-1} end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[1])
  local v = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[4], v, ARGV[1])
end
if ARGV[3] ~= '' then
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'doc', ARGV[3])
  else
    redis.call('HSETNX', KEYS[1], 'doc', ARGV[3])
  end
end
local out = {1}
for i = 7, #ARGV do
  local cur = redis.call('HGET', KEYS[6], ARGV[i])
  if not cur then
    redis.call('HSET', KEYS[6], ARGV[i], ARGV[5])
    out[#out + 1] = ARGV[i]
  elseif cur == ARGV[5] then
    out[#out + 1] = ARGV[i]
  end
end
if #ARGV >= 7 then redis.call('EXPIRE', KEYS[6], ARGV[6]) end
return out
"""

# KEYS: rec, version, changes, ids, trim floor; ARGV: id, slack
DELETE = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
local v = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], v, ARGV[1])
local extra = redis.call('ZCARD', KEYS[3]) - redis.call('SCARD', KEYS[4]) - tonumber(ARGV[2])
if extra > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], 0, extra - 1, 'WITHSCORES')
  redis.call('SET', KEYS[5], gone[#gone])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
end
return v
"""


# KEYS: version, changes, ids, trim floor, tombstones, retired, then rec and claims per id
# ARGV: slack, then id, tombstone, finished_at per record
# A record removed meanwhile (no hash, no tombstone) is not given a tombstone; one
# already retired (by a replica with an older view of the members) is left as it is.
# Returns the ids retired by this call.
RETIRE = """
local out = {}
local v = nil
for i = 0, (#ARGV - 1) / 3 - 1 do
  local id = ARGV[2 + 3 * i]
  local rec, claims = KEYS[7 + 2 * i], KEYS[8 + 2 * i]
  if redis.call('EXISTS', rec) == 1 and redis.call('HEXISTS', KEYS[5], id) == 0 then
    redis.call('DEL', rec, claims)
    redis.call('SREM', KEYS[3], id)
    redis.call('HSET', KEYS[5], id, ARGV[3 + 3 * i])
    redis.call('ZADD', KEYS[6], ARGV[4 + 3 * i], id)
    if not v then v = redis.call('INCR', KEYS[1]) end
    redis.call('ZADD', KEYS[2], v, id)
    out[#out + 1] = id
  end
end
local extra = redis.call('ZCARD', KEYS[2]) - redis.call('SCARD', KEYS[3]) - tonumber(ARGV[1])
if extra > 0 then
  local gone = redis.call('ZRANGE', KEYS[2], 0, extra - 1, 'WITHSCORES')
  redis.call('SET', KEYS[4], gone[#gone])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return out
"""

# KEYS: tombstones, retired; ARGV: finished before (exclusive), limit. Returns the ids.
FORGET = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids > 0 then
  redis.call('HDEL', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
end
return ids
"""
