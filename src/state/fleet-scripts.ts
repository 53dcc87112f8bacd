// The Redis side of the fleet-wide limits (state/fleet-buckets.ts): the Lua
// scripts, run atomically by Redis, and the commands they become on an
// ioredis client. Every script reads Redis TIME, so instance clocks do not
// matter.
//
// Keys (P = state.prefix):
//   P fleet:b:<name>      hash  t (tokens), a (Redis TIME ms); expires when full
//   P fleet:conn:<ip>     hash  instance id → open connections from <ip>
//   P fleet:instances     zset  instance id scored by its liveness deadline (ms)
import type { Redis } from "ioredis";

/** Lua: the token bucket, refilled by Redis TIME, shared by both scripts. */
const LUA_BUCKET = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function load(key, rate, cap, now)
  local v = redis.call('HMGET', key, 't', 'a')
  local tokens = cap
  if v[1] then
    tokens = tonumber(v[1])
    local e = now - tonumber(v[2])
    if e > 0 and rate > 0 then tokens = math.min(cap, tokens + e * rate / 1000) end
    if tokens > cap then tokens = cap end
  end
  return tokens
end
local function store(key, tokens, rate, cap, now)
  redis.call('HSET', key, 't', string.format('%.17g', tokens), 'a', string.format('%d', now))
  local ttl = 86400000
  if rate > 0 then ttl = math.ceil((cap - tokens) * 1000 / rate) + 1000 end
  redis.call('PEXPIRE', key, ttl)
end
`;

// KEYS: bucket. ARGV: rate (tokens/s), capacity, debit (spent before this
// request without a grant), want (lease), need (least useful grant).
// A negative debit gives back an unspent lease. Returns {grant, wait ms
// until `need` tokens} as strings.
const LUA_LEASE = `${LUA_BUCKET}
local rate = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local debit = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local need = tonumber(ARGV[5])
local now = now_ms()
local tokens = load(KEYS[1], rate, cap, now) - debit
if tokens < -cap then tokens = -cap end
if tokens > cap then tokens = cap end
local grant = 0
if tokens >= need then
  grant = want
  if grant > tokens then grant = tokens end
end
tokens = tokens - grant
store(KEYS[1], tokens, rate, cap, now)
local wait = 0
if grant == 0 then
  if rate > 0 then wait = math.ceil((need - tokens) * 1000 / rate) else wait = 86400000 end
end
return {string.format('%.17g', grant), tostring(wait)}`;

// KEYS: connection hash, instances zset, rate bucket. ARGV: instance id, this
// instance's connections from the IP counting the new one, cap (0: none),
// rate (0: no rate bucket), capacity. Returns 0 admitted, 1 over the cap, 2
// over the rate. An admitted connection is recorded at once.
const LUA_ADMIT = `${LUA_BUCKET}
local me = ARGV[1]
local mine = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local now = now_ms()
if max > 0 then
  local total = mine
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local id = all[i]
    if id ~= me then
      local until_ = redis.call('ZSCORE', KEYS[2], id)
      if until_ and tonumber(until_) > now then total = total + tonumber(all[i + 1])
      else redis.call('HDEL', KEYS[1], id) end
    end
  end
  if total > max then return 1 end
end
if rate > 0 then
  local tokens = load(KEYS[3], rate, cap, now)
  if tokens < 1 then return 2 end
  store(KEYS[3], tokens - 1, rate, cap, now)
end
redis.call('HSET', KEYS[1], me, mine)
redis.call('PEXPIRE', KEYS[1], 3600000)
return 0`;

// KEYS: connection hash. ARGV: instance id, count (0 deletes).
const LUA_SET_COUNT = `
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 3600000)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1`;

// KEYS: instances zset. ARGV: instance id, ttl ms.
const LUA_HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1`;

/** The Redis commands FleetBuckets uses (ioredis with defineScripts, or a double in tests). */
export interface FleetRedis {
  fleetLease(key: string, rate: string, cap: string, debit: string, want: string, need: string): Promise<[string, string]>;
  fleetAdmit(conn: string, instances: string, bucket: string, me: string, mine: string, max: string, rate: string, cap: string): Promise<number>;
  fleetSetCount(conn: string, me: string, count: string): Promise<unknown>;
  fleetHeartbeat(instances: string, me: string, ttl: string): Promise<unknown>;
}

/** Defines the fleet's scripts on an ioredis client (FleetBuckets.open() does; tests wrap such a client). */
export function defineScripts(client: Redis): void {
  client.defineCommand("fleetLease", { numberOfKeys: 1, lua: LUA_LEASE });
  client.defineCommand("fleetAdmit", { numberOfKeys: 3, lua: LUA_ADMIT });
  client.defineCommand("fleetSetCount", { numberOfKeys: 1, lua: LUA_SET_COUNT });
  client.defineCommand("fleetHeartbeat", { numberOfKeys: 1, lua: LUA_HEARTBEAT });
}
