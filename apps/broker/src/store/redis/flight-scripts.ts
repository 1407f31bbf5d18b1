import { LUA_SCHEMA } from "./schema.js";

/**
 * A lineage's spend is leased in slices only while every limit on it has room for this many
 * requests like the one at hand (a slice is at most a sixteenth of the room): the last of a budget
 * and of maxConcurrent's slots are reserved by AUTHORIZE request by request.
 */
export const SPEND_SLICED_FROM = 16;

/**
 * Budgets and concurrency in Lua: the part of AUTHORIZE that reserves a request's worst case and
 * takes a slot for it, and the script that settles what it really cost.
 *
 * A request of a tracked lineage (one whose grant or an ancestor has a budget or maxConcurrent)
 * is a flight: a member of the tree's sorted set `K.flights`, scored by when its lease ends,
 * written `<id>|<usd>|<tokens>|<grant ids>` (what it reserved, and on which grants: the grant and
 * every ancestor), or `<id>|<usd>|<tokens>|<grant ids>|<slots>` for a node's slice of spend
 * (SPEND_LEASE: money, tokens and slots reserved at once, spent by the node request by request). Each of those grants counts it in F.reservedUsd, F.reservedTokens and
 * F.inFlight until it settles: then the reservation becomes F.spentUsd / F.spentTokens at what the
 * answer says it cost. A flight whose lease ran out (its node died, or could not renew) settles
 * at its full reservation the next time the tree is used: never under-counted.
 */

/** `settle(fkey, member, usd, tokens)`: nil usd/tokens charge the reservation in full. → 1, or 0 if already settled. */
export const SETTLE_FN = `
local function settle(fkey, member, cu, ct)
  if redis.call('ZREM', fkey, member) == 0 then return 0 end
  local _, u, tk, levels = string.match(member, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  local ids, slots = string.match(levels or '', '^([^|]*)|(%d+)$')
  if ids then levels = ids else slots = 1 end
  u, tk = tonumber(u) or 0, tonumber(tk) or 0
  cu, ct = cu or u, ct or tk
  for gid in string.gmatch(levels or '', '[^,]+') do
    local k = base .. K.grant .. gid
    -- A purged or expired grant is not brought back by its counters.
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, F.reservedUsd, 0 - u) -- never -0: Redis reads it as no integer
      redis.call('HINCRBY', k, F.reservedTokens, 0 - tk)
      redis.call('HINCRBY', k, F.spentUsd, cu)
      redis.call('HINCRBY', k, F.spentTokens, ct)
      redis.call('HINCRBY', k, F.inFlight, 0 - tonumber(slots))
    end
  end
  return 1
end
`;

/**
 * Inside AUTHORIZE, after the scope and maxUses checks and before anything is counted:
 * `reserve(levels, ru, rt)` checks every level's budget and slots and answers nil, or a denial.
 * `ru < 0`: the request has no cost bound (unpriced model, no output limit), refused when any
 * level has a budget. `take(levels, ru, rt, id, leaseUntil)` then records the flight.
 */
export const RESERVE_FN = `${SETTLE_FN}
-- What the tightest level has left of each unit once this request is reserved, and its limit:
-- 'usdLeft:usdLimit:tokensLeft:tokensLimit' ('' for a unit no level limits).
local left = ''
-- Whether a node could lease a slice of this lineage's spend (SPEND_LEASE): every limit has room
-- for ${SPEND_SLICED_FROM} more requests like this one.
local sliceable = true
local function reserve(t, g, levels, ru, rt, scope)
  local lu, lul, lt, ltl = nil, nil, nil, nil
  local fkey = base .. K.flights
  for _, dead in ipairs(redis.call('ZRANGEBYSCORE', fkey, '-inf', now, 'LIMIT', 0, 64)) do settle(fkey, dead) end
  for i, id in ipairs(levels) do
    local v = redis.call('HMGET', base .. K.grant .. id, F.budgetUsd, F.budgetTokens, F.maxConcurrent,
      F.spentUsd, F.spentTokens, F.reservedUsd, F.reservedTokens, F.inFlight)
    local above = nil
    if i > 1 then above = id end
    if (v[1] or v[2]) and ru < 0 then return fail('constraint_denied', t, g, 'unbudgeted', scope) end
    local bu, bt = tonumber(v[1]), tonumber(v[2])
    if bu and (tonumber(v[4]) or 0) + (tonumber(v[6]) or 0) + ru > bu then
      return fail('budget_exhausted', t, g, 'budget', 'usd:' .. v[1], above)
    end
    if bt and (tonumber(v[5]) or 0) + (tonumber(v[7]) or 0) + rt > bt then
      return fail('budget_exhausted', t, g, 'budget', 'tokens:' .. v[2], above)
    end
    local mcc = tonumber(v[3])
    if mcc and (tonumber(v[8]) or 0) + 1 > mcc then
      return fail('concurrency_limited', t, g, 'concurrency', v[3], above, '1000')
    end
    if mcc and mcc - (tonumber(v[8]) or 0) < ${SPEND_SLICED_FROM} then sliceable = false end
    if (bu and bu - (tonumber(v[4]) or 0) - (tonumber(v[6]) or 0) < ${SPEND_SLICED_FROM} * math.max(ru, 1))
      or (bt and bt - (tonumber(v[5]) or 0) - (tonumber(v[7]) or 0) < ${SPEND_SLICED_FROM} * math.max(rt, 1)) then
      sliceable = false
    end
    if bu then
      local l = bu - (tonumber(v[4]) or 0) - (tonumber(v[6]) or 0) - math.max(ru, 0)
      if not lu or l < lu then lu, lul = l, bu end
    end
    if bt then
      local l = bt - (tonumber(v[5]) or 0) - (tonumber(v[7]) or 0) - math.max(rt, 0)
      if not lt or l < lt then lt, ltl = l, bt end
    end
  end
  if lu or lt then
    left = (lu and string.format('%d', lu) or '') .. ':' .. (lul and string.format('%d', lul) or '') .. ':'
      .. (lt and string.format('%d', lt) or '') .. ':' .. (ltl and string.format('%d', ltl) or '')
  end
  return nil
end

local function take(levels, ru, rt, id, leaseUntil)
  if ru < 0 then ru, rt = 0, 0 end
  for _, gid in ipairs(levels) do
    local k = base .. K.grant .. gid
    redis.call('HINCRBY', k, F.reservedUsd, ru)
    redis.call('HINCRBY', k, F.reservedTokens, rt)
    redis.call('HINCRBY', k, F.inFlight, 1)
  end
  local member = id .. '|' .. ru .. '|' .. rt .. '|' .. table.concat(levels, ',')
  local fkey = base .. K.flights
  redis.call('ZADD', fkey, leaseUntil, member)
  -- The set lives as long as the lineage's root: nothing of the tree outlives it.
  local ttl = redis.call('PTTL', base .. K.grant .. levels[#levels])
  if ttl > 0 then redis.call('PEXPIRE', fkey, ttl) end
  return member
end
`;

/**
 * KEYS[1] the tree's flights. ARGV: base, then (member, usd, tokens) per flight ('' usd: charge
 * the reservation). One call per tree and batch. → how many were still open.
 */
export const SETTLE = `${LUA_SCHEMA}
local base = ARGV[1]
${SETTLE_FN}
local settled = 0
for i = 2, #ARGV, 3 do
  settled = settled + settle(KEYS[1], ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]))
end
return settled
`;

/**
 * A node's slice of a tracked lineage's spend. KEYS[1] the tree's flights. ARGV: base, now, the
 * slice's id, when its lease ends, the nano-dollars, tokens and slots wanted, the least usd and
 * tokens worth leasing (one request's worst case; -1 for an unpriced one, which no budget takes),
 * then the levels' grant ids. On every level:
 * at most a sixteenth of the room each limit has (budget usd, budget tokens, maxConcurrent); a
 * unit no level limits is not reserved (what is spent of it is charged when the slice settles).
 * Reserved and recorded as a flight with `slots`, so that a node that dies holding it is charged
 * in full and its slots freed when the lease ends, as any flight. → {usd, tokens, slots, usd
 * limited (1|0), tokens limited, member, left} or {0} when nothing worth leasing fits.
 */
export const SPEND_LEASE = `${LUA_SCHEMA}
local base, now = ARGV[1], tonumber(ARGV[2])
local id, leaseUntil = ARGV[3], tonumber(ARGV[4])
local wu, wt, ws = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local mu, mt = tonumber(ARGV[8]), tonumber(ARGV[9])
${SETTLE_FN}
local fkey = KEYS[1]
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', fkey, '-inf', now, 'LIMIT', 0, 64)) do settle(fkey, dead) end
local levels, limU, limT = {}, false, false
local lu, lul, lt, ltl = nil, nil, nil, nil
for i = 10, #ARGV do
  local k = base .. K.grant .. ARGV[i]
  if redis.call('EXISTS', k) == 0 then return {0} end
  levels[#levels + 1] = ARGV[i]
  local v = redis.call('HMGET', k, F.budgetUsd, F.budgetTokens, F.maxConcurrent,
    F.spentUsd, F.spentTokens, F.reservedUsd, F.reservedTokens, F.inFlight)
  local bu, bt, mcc = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  if bu then
    limU = true
    local room = bu - (tonumber(v[4]) or 0) - (tonumber(v[6]) or 0)
    wu = math.min(wu, math.floor(room / 16))
    if not lu or room < lu then lu, lul = room, bu end
  end
  if bt then
    limT = true
    local room = bt - (tonumber(v[5]) or 0) - (tonumber(v[7]) or 0)
    wt = math.min(wt, math.floor(room / 16))
    if not lt or room < lt then lt, ltl = room, bt end
  end
  if mcc then ws = math.min(ws, math.floor((mcc - (tonumber(v[8]) or 0)) / 16)) end
end
if (limU or limT) and (mu < 0 or mt < 0) then return {0} end -- unpriced under a budget: AUTHORIZE refuses it
if not limU then wu = 0 end
if not limT then wt = 0 end
if ws < 1 or (limU and (wu < mu or wu <= 0)) or (limT and (wt < mt or wt <= 0)) then return {0} end
for _, gid in ipairs(levels) do
  local k = base .. K.grant .. gid
  redis.call('HINCRBY', k, F.reservedUsd, wu)
  redis.call('HINCRBY', k, F.reservedTokens, wt)
  redis.call('HINCRBY', k, F.inFlight, ws)
end
local member = id .. '|' .. wu .. '|' .. wt .. '|' .. table.concat(levels, ',') .. '|' .. ws
redis.call('ZADD', fkey, leaseUntil, member)
-- The set lives as long as the longest-lived level (the root): it only ever grows here.
local ttl = 0
for _, gid in ipairs(levels) do ttl = math.max(ttl, redis.call('PTTL', base .. K.grant .. gid)) end
if ttl > 0 and ttl > redis.call('PTTL', fkey) then redis.call('PEXPIRE', fkey, ttl) end
local left = (lu and string.format('%d', lu - wu) or '') .. ':' .. (lul and string.format('%d', lul) or '') .. ':'
  .. (lt and string.format('%d', lt - wt) or '') .. ':' .. (ltl and string.format('%d', ltl) or '')
return {wu, wt, ws, limU and 1 or 0, limT and 1 or 0, member, left}
`;
