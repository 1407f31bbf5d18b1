/**
 * The node bus's two scripts (`node-bus.ts`). Both read the time from Redis, so that every node
 * measures leases on one clock: no node's skew can make another give up on it early.
 */

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * A heartbeat. KEYS[1] the members (sorted set: node id → lease end, ms on Redis's clock);
 * ARGV: node id, lease (ms, 0: publish only — the node is not fresh yet), channel, message.
 * Drops members whose lease ended, renews this one's, and publishes the beat on the bus channel
 * (the node counts its lease from a beat it hears back). The set itself goes a minute after the
 * last beat of any node. → Redis's time.
 */
export const BEAT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lease = tonumber(ARGV[2])
if lease > 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 60000)
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return now
`;

/** KEYS[1] the members → [node id, ms left of its lease, …] for every member whose lease runs. */
export const MEMBERS = `${NOW}
local m = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local out = {}
for i = 1, #m, 2 do
  out[#out + 1] = m[i]
  out[#out + 1] = tostring(tonumber(m[i + 1]) - now)
end
return out
`;

/**
 * A question on the bus channel. KEYS[1] the members (only for its slot): on a Cluster the
 * question is published from the same shard as every heartbeat, so a node that hears a later
 * heartbeat has heard the question before it (one shard's messages reach a subscriber in order).
 */
export const SHOUT = `return redis.call('PUBLISH', ARGV[1], ARGV[2])`;
