import { LUA_SCHEMA } from "./schema.js";

/**
 * Uses are leased only while every maxUses level has at least this many left (a slice is at most
 * a sixteenth of what is left): the last of a grant's uses are counted by AUTHORIZE one by one,
 * so they are never held by one node while another is refused.
 */
export const USES_SLICED_FROM = 16;

/**
 * Leased slices of a rate limit (local-authority.ts). KEYS[1] the grant's key (the tree's slot);
 * ARGV: base, now, scope, window (ms), limit, units wanted, then the levels' grant ids (the grant
 * and every ancestor). Takes as many units as fit under the sliding estimate on every level, at
 * most the wanted and a sixteenth of what is left (at least one), and adds them to the current window's counter of each — as that many requests
 * counted now would. The counters then hold every unit any node may spend: the cluster total
 * cannot pass the limit. → {units taken (0: none fit), the window's index}.
 */
export const RATE_LEASE = `${LUA_SCHEMA}
local base, now, scope = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local window, limit, give = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cur = math.floor(now / window)
local into = now - cur * window
local keys = {}
for i = 7, #ARGV do
  local k = base .. K.rate .. ARGV[i] .. ':' .. scope .. ':'
  local v = redis.call('MGET', k .. cur, k .. (cur - 1))
  local est = (tonumber(v[2]) or 0) * (window - into) / window + (tonumber(v[1]) or 0)
  -- At most a sixteenth of what is left: slices shrink as the limit nears, so that little is held
  -- on one node while another is refused (undershoot: a quarter left 20 % of the limit refused
  -- early in "pnpm bench slices", an eighth 7 %, a sixteenth 0-0.15 %).
  local room = math.floor(limit - est)
  local share = math.max(1, math.floor(room / 16))
  if room < give then give = room end
  if share < give then give = share end
  keys[#keys + 1] = k .. cur
end
if give <= 0 then return {0, cur} end
for _, k in ipairs(keys) do
  if redis.call('INCRBY', k, give) == give then redis.call('PEXPIRE', k, window * 2) end
end
return {give, cur}
`;

/**
 * Gives back units of a slice that were not spent. KEYS[1] the grant's key; ARGV: base, scope,
 * window index, units, then the levels' grant ids. Never below zero; a counter already gone
 * (its window long past) stays gone.
 */
export const RATE_RETURN = `${LUA_SCHEMA}
local base, scope, cur, units = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
for i = 5, #ARGV do
  local k = base .. K.rate .. ARGV[i] .. ':' .. scope .. ':' .. cur
  local v = tonumber(redis.call('GET', k))
  if v then redis.call('SET', k, math.max(0, v - units), 'KEEPTTL') end
end
return 1
`;

/**
 * Leased slices of maxUses (slices.ts). KEYS[1] the grant's key (the tree's slot); ARGV: base,
 * units wanted, then the levels' grant ids (the grant and every ancestor). On every level that
 * has a maxUses, takes as many uses as fit, at most the wanted and a sixteenth of what is left
 * there, and adds them to its `used` — as that many requests counted now would. Nothing is leased
 * while any level has fewer than USES_SLICED_FROM uses left. A level that is gone (purged,
 * expired) is not brought back. → units taken (0: none).
 */
export const USES_LEASE = `${LUA_SCHEMA}
local base, give = ARGV[1], tonumber(ARGV[2])
local counted = {}
for i = 3, #ARGV do
  local k = base .. K.grant .. ARGV[i]
  local v = redis.call('HMGET', k, F.maxUses, F.used)
  local mu = tonumber(v[1])
  if mu then
    local room = mu - (tonumber(v[2]) or 0)
    local share = math.floor(room / 16)
    if room < ${USES_SLICED_FROM} then share = 0 end
    if share < give then give = share end
    counted[#counted + 1] = k
  end
end
if give <= 0 or #counted == 0 then return 0 end
for _, k in ipairs(counted) do redis.call('HINCRBY', k, F.used, give) end
return give
`;

/**
 * Gives back uses of a slice that were not spent. KEYS[1] the grant's key; ARGV: base, units,
 * then the levels' grant ids. Only levels that still exist and have a maxUses; never below zero.
 */
export const USES_RETURN = `${LUA_SCHEMA}
local base, units = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV do
  local k = base .. K.grant .. ARGV[i]
  local v = redis.call('HMGET', k, F.maxUses, F.used)
  if v[1] and v[2] then redis.call('HSET', k, F.used, math.max(0, tonumber(v[2]) - units)) end
end
return 1
`;
