import { RESERVE_FN } from "./flight-scripts.js";
import { USES_SLICED_FROM } from "./lease-scripts.js";
import { LUA_SCHEMA } from "./schema.js";

/**
 * Lua scripts, registered once with ioredis `defineCommand` (EVALSHA, EVAL on NOSCRIPT).
 *
 * Every script touches only keys of one lineage tree: the declared KEYS and keys built from
 * ARGV[1], the tree's base (`<prefix>:{<tree>}:`), so each runs in one Cluster slot. The key
 * segments and hash fields come from `schema.ts` as the tables `K` (`base .. K.grant .. id`), `F`
 * and `T` (`F.notAfter`), and `chain()` reads values by name (`g[GR.agent]`), never by a bare index.
 *
 * Scripts that act on a presented token share one argument prefix:
 *   ARGV[1] base, ARGV[2] now (ms), ARGV[3] n, ARGV[4 .. 3+n] revocation rules
 * and read their own arguments from ARGV[4+n] on. A rule is six tab-separated fields
 * (id, agent, scope, rootGrantId, createdAfter, createdBefore; empty = any).
 *
 * Results are flat arrays of strings laid out as `schema.ts` says; a denial is `DENIAL`, with ""
 * for what is unknown and its reason as data (`reason.ts`).
 */

const CHAIN = `${LUA_SCHEMA}
-- A denial (schema.ts DENIAL): the code, who, and why as data (reason.ts: kind, value, ancestor).
local function fail(code, t, g, kind, value, ancestor, extra)
  t = t or {}
  g = g or {}
  return {code, t[TR.grantId] or '', t[TR.tokenId] or '', g[GR.rootId] or '', g[GR.parentId] or '',
    g[GR.agent] or '', t[TR.issuedAt] or '', g[GR.onBehalfOf] or '', kind or '', value or '', ancestor or '', extra or ''}
end

local base, now = ARGV[1], tonumber(ARGV[2])
local nrules = tonumber(ARGV[3])
local o = 4 + nrules
local rules = {}
for i = 1, nrules do
  local r, j = {}, 1
  for field in string.gmatch(ARGV[3 + i] .. '\\t', '([^\\t]*)\\t') do r[j] = field j = j + 1 end
  rules[i] = r
end

-- The first rule that selects a grant with these fields, or nil.
local function ruled(agent, scopes, root, ca, obo)
  if nrules == 0 then return nil end
  ca = tonumber(ca) or 0
  for _, r in ipairs(rules) do
    if (r[2] == '' or r[2] == agent)
      and (r[4] == '' or r[4] == root)
      and ((r[7] or '') == '' or r[7] == obo)
      and (r[5] == '' or ca > tonumber(r[5]))
      and (r[6] == '' or ca <= tonumber(r[6]))
      and (r[3] == '' or string.find(',' .. (scopes or '') .. ',', ',' .. r[3] .. ',', 1, true)) then
      return r[1]
    end
  end
  return nil
end

-- token → grant → every ancestor: revoked (by mark, by rule, by purge), expired?
-- Returns t (TOKEN_READ), g (GRANT_READ) and the ancestors, root first, as
-- {id, mu, used, agent, scopes, ca}; or nil and a denial.
local function chain(tkey)
  local t = redis.call('HMGET', tkey, unpack(TOKEN_READ))
  if not t[TR.grantId] then
    -- A purged tree leaves a tombstone: its tokens are refused as revoked, not as unknown.
    if redis.call('EXISTS', base .. K.tomb) == 1 then return nil, fail('token_revoked', nil, nil, 'purged') end
    return nil, fail('token_invalid')
  end
  local g = redis.call('HMGET', base .. K.grant .. t[TR.grantId], unpack(GRANT_READ))
  if t[TR.revokedAt] then return nil, fail('token_revoked', t, g, 'token', t[TR.tokenId]) end
  if not g[GR.notAfter] then
    if redis.call('EXISTS', base .. K.tomb) == 1 then return nil, fail('token_revoked', t, g, 'purged') end
    return nil, fail('token_invalid', t, g)
  end
  if g[GR.revokedAt] then return nil, fail('token_revoked', t, g, 'grant', t[TR.grantId]) end
  local hit = ruled(g[GR.agent], g[GR.scopes], g[GR.rootId], g[GR.createdAt], g[GR.onBehalfOf] or '')
  if hit then return nil, fail('token_revoked', t, g, 'rule', hit) end
  local ancestors = {}
  if g[GR.ancestors] ~= '' then
    for aid in string.gmatch(g[GR.ancestors], '[^,]+') do
      local a = redis.call('HMGET', base .. K.grant .. aid, unpack(ANCESTOR_READ))
      if (not a[AR.notAfter]) or a[AR.revokedAt] then return nil, fail('token_revoked', t, g, 'ancestor', aid) end
      hit = ruled(a[AR.agent], a[AR.scopes], g[GR.rootId], a[AR.createdAt], g[GR.onBehalfOf] or '')
      if hit then return nil, fail('token_revoked', t, g, 'rule', hit, aid) end
      ancestors[#ancestors + 1] = {
        id = aid, mu = tonumber(a[AR.maxUses]), used = tonumber(a[AR.used]) or 0,
        agent = a[AR.agent], scopes = a[AR.scopes], ca = a[AR.createdAt],
      }
    end
  end
  if tonumber(g[GR.notAfter]) <= now then return nil, fail('token_expired', t, g, 'expired', 'grant') end
  if tonumber(t[TR.expiresAt]) <= now then return nil, fail('token_expired', t, g, 'expired', 'token') end
  return t, g, ancestors
end
`;

/**
 * KEYS[1] token key. ARGV from o: n, then n × (scope, pass 1|0, limit, windowMs, usd, tokens),
 * then 1 when the caller wants the chain's rule facts, the flight id and when its lease ends.
 * `usd`/`tokens` are the candidate's worst case (nano-dollars; -1: no bound); a tracked lineage
 * reserves it (flight-scripts.ts).
 * → {'ok', grantId, tokenId, root, parent, agent, issuedAt, scope, flight} or a denial; with the
 * facts, then expiresAt and (agent, scopes, createdAt) of the grant and of each ancestor. Those
 * never change, so a node keeps them per token to send only the rules that could select it.
 */
export const AUTHORIZE = `${CHAIN}${RESERVE_FN}
local t, g, ancestors = chain(KEYS[1])
if not t then return g end
local n = tonumber(ARGV[o])
local STRIDE = 6
local held = {}
for s in string.gmatch(g[GR.scopes], '[^,]+') do held[s] = true end
local chosen, failed = nil, nil
for i = 0, n - 1 do
  local name = ARGV[o + 1 + i * STRIDE]
  if held[name] then
    if ARGV[o + 2 + i * STRIDE] == '1' then chosen = i break end
    if not failed then failed = name end
  end
end
if not chosen then
  if failed then return fail('constraint_denied', t, g, 'constraint', failed) end
  return fail('scope_denied', t, g)
end
local c = o + 1 + chosen * STRIDE
local scope, limit, window = ARGV[c], tonumber(ARGV[c + 2]), tonumber(ARGV[c + 3])
local after = o + 1 + n * STRIDE
-- maxUses of the grant and of every ancestor that has one: a use by a child is a use of each.
local spend = {}
local mu = tonumber(g[GR.maxUses])
if mu then
  if (tonumber(g[GR.used]) or 0) >= mu then return fail('forbidden', t, g, 'uses', g[GR.maxUses]) end
  spend[1] = t[TR.grantId]
end
for _, a in ipairs(ancestors) do
  if a.mu then
    if a.used >= a.mu then return fail('forbidden', t, g, 'uses', tostring(a.mu), a.id) end
    spend[#spend + 1] = a.id
  end
end
-- The grant and every ancestor, nearest first: the levels a rate, a budget and a slot count on.
local levels = {t[TR.grantId]}
for i = #ancestors, 1, -1 do levels[#levels + 1] = ancestors[i].id end
local counters = {}
if limit > 0 then
  -- Sliding window over the grant and every ancestor: a child never spends more than its
  -- parent may, and a parent cannot multiply its rate by delegating.
  local cur = math.floor(now / window)
  local into = now - cur * window
  for i, id in ipairs(levels) do
    local k = base .. K.rate .. id .. ':' .. scope .. ':'
    local v = redis.call('MGET', k .. cur, k .. (cur - 1))
    local cnt, prev = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    local est = prev * (window - into) / window + cnt
    if est + 1 > limit then
      local wait
      if cnt + 1 > limit or prev == 0 then wait = window - into else wait = math.ceil((est + 1 - limit) * window / prev) end
      local above = nil
      if i > 1 then above = id end
      return fail('rate_limited', t, g, 'rate', scope, above, tostring(wait))
    end
    counters[i] = k .. cur
  end
end
local ru, rt = tonumber(ARGV[c + 4]), tonumber(ARGV[c + 5])
local tracked = g[GR.tracked] == '1'
if tracked then
  local denied = reserve(t, g, levels, ru, rt, scope)
  if denied then return denied end
end
-- Every check passed: count.
for _, k in ipairs(counters) do
  if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, window * 2) end
end
for _, id in ipairs(spend) do redis.call('HINCRBY', base .. K.grant .. id, F.used, 1) end
local flight = ''
if tracked then flight = take(levels, ru, rt, ARGV[after + 1], tonumber(ARGV[after + 2])) end
local out = {'ok', t[TR.grantId], t[TR.tokenId], g[GR.rootId], g[GR.parentId], g[GR.agent], t[TR.issuedAt], g[GR.onBehalfOf] or '', scope, flight, left, g[GR.notAfter]}
if ARGV[after] == '1' then
  out[#out + 1] = t[TR.expiresAt]
  -- What a node needs to serve this token itself: what the chain counts here — '0' nothing, 'u' uses
  -- (a maxUses) and/or 's' spend (a budget or maxConcurrent), both leased in slices, '1' something
  -- too near its limit to lease (counted here request by request) — the grant's scopes, and the
  -- ancestors' ids.
  -- A chain with fewer than ${USES_SLICED_FROM} uses left on some level is counted here use by use.
  local room = nil
  if mu then room = mu - (tonumber(g[GR.used]) or 0) - 1 end
  local ids = {}
  for _, a in ipairs(ancestors) do
    if a.mu and (not room or a.mu - a.used - 1 < room) then room = a.mu - a.used - 1 end
    ids[#ids + 1] = a.id
  end
  local counted = ''
  if room then counted = 'u' end
  if tracked then counted = counted .. 's' end
  if (room and room < ${USES_SLICED_FROM}) or (tracked and not sliceable) then counted = '1' end
  if counted == '' then counted = '0' end
  out[#out + 1] = counted .. ';' .. table.concat(ids, ',')
  out[#out + 1] = g[GR.agent] out[#out + 1] = g[GR.scopes] out[#out + 1] = g[GR.createdAt] or '0'
  for _, a in ipairs(ancestors) do
    out[#out + 1] = a.agent or '' out[#out + 1] = a.scopes or '' out[#out + 1] = a.ca or '0'
  end
end
return out
`;

/**
 * KEYS[1] token key; called with no rules. → the chain's rule facts as AUTHORIZE appends them,
 * after 'ok' and the root grant id: {'ok', rootId, expiresAt, (agent, scopes, createdAt)…}, or the
 * chain's denial (which no rule could change).
 */
export const FACTS = `${CHAIN}
local t, g, ancestors = chain(KEYS[1])
if not t then return g end
local out = {'ok', g[GR.rootId], t[TR.expiresAt], g[GR.onBehalfOf] or '', g[GR.agent], g[GR.scopes], g[GR.createdAt] or '0'}
for _, a in ipairs(ancestors) do
  out[#out + 1] = a.agent or '' out[#out + 1] = a.scopes or '' out[#out + 1] = a.ca or '0'
end
return out
`;

/**
 * KEYS: grant, token, tokenId, tree, grant's token set[, parent token]. ARGV from o: grantId,
 * tokenId, hash, issuedAt, expiresAt, grantExpireAt, tokenExpireAt, parentId ('' for a root),
 * then field/value pairs of the grant record. → {'ok'} or a denial about the parent token.
 */
export const CREATE = `${CHAIN}
if KEYS[6] then
  local t, g = chain(KEYS[6])
  if not t then return g end
  if t[TR.grantId] ~= ARGV[o + 7] then return fail('token_invalid', t, g, 'parent_mismatch') end
  -- A grant's children are counted for its whole life: a token cannot mint them without end.
  local pkey = base .. K.grant .. t[TR.grantId]
  local mc = tonumber(redis.call('HGET', pkey, F.maxChildren))
  local kids = redis.call('HINCRBY', pkey, F.children, 1)
  if mc and kids > mc then
    redis.call('HINCRBY', pkey, F.children, -1)
    return fail('delegation_denied', t, g, 'children', tostring(mc))
  end
end
local gid, tid = ARGV[o], ARGV[o + 1]
redis.call('HSET', KEYS[1], F.latestTokenId, tid, F.latestExpiresAt, ARGV[o + 4], unpack(ARGV, o + 8))
redis.call('PEXPIREAT', KEYS[1], ARGV[o + 5])
redis.call('HSET', KEYS[2], T.grantId, gid, T.tokenId, tid, T.issuedAt, ARGV[o + 3], T.expiresAt, ARGV[o + 4])
redis.call('PEXPIREAT', KEYS[2], ARGV[o + 6])
redis.call('SET', KEYS[3], ARGV[o + 2], 'PXAT', ARGV[o + 6])
redis.call('HSET', KEYS[4], gid, ARGV[o + 7])
if ARGV[o + 7] == '' then redis.call('PEXPIREAT', KEYS[4], ARGV[o + 5]) end
redis.call('SADD', KEYS[5], tid)
redis.call('PEXPIREAT', KEYS[5], ARGV[o + 5])
return {'ok'}
`;

/**
 * KEYS: presented token, new token, new tokenId. ARGV from o: tokenId, hash, ttl (0 = the
 * grant's default), grace. → {'ok', tokenId, grantId, issuedAt, expiresAt, ...grant fields} or a denial.
 */
export const REFRESH = `${CHAIN}
local t, g = chain(KEYS[1])
if not t then return g end
local ttl = tonumber(ARGV[o + 2])
if ttl == 0 then ttl = tonumber(g[GR.ttl]) end
if ttl > tonumber(g[GR.maxTtl]) then return fail('ttl_exceeded', t, g, 'max_ttl') end
local e = math.min(now + ttl, tonumber(g[GR.notAfter]))
local grace = tonumber(ARGV[o + 3])
local gid = t[TR.grantId]
local gkey = base .. K.grant .. gid
redis.call('HSET', KEYS[2], T.grantId, gid, T.tokenId, ARGV[o], T.issuedAt, ARGV[2], T.expiresAt, e)
redis.call('PEXPIREAT', KEYS[2], e + grace)
redis.call('SET', KEYS[3], ARGV[o + 1], 'PXAT', e + grace)
redis.call('SADD', base .. K.tokenSet .. gid, ARGV[o])
redis.call('HSET', gkey, F.latestTokenId, ARGV[o], F.latestExpiresAt, e)
local out = {'ok', ARGV[o], gid, ARGV[2], tostring(e)}
local fields = redis.call('HGETALL', gkey)
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
`;

/** KEYS[1] token key. → {'ok', tokenId, grantId, issuedAt, expiresAt, ...grant fields} or a denial. */
export const INSPECT = `${CHAIN}
local t, g = chain(KEYS[1])
if not t then return g end
local out = {'ok', t[TR.tokenId], t[TR.grantId], t[TR.issuedAt], t[TR.expiresAt]}
local fields = redis.call('HGETALL', base .. K.grant .. t[TR.grantId])
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
`;

/** KEYS[1] the audit stream. ARGV: max length, then one JSON event each. One call per batch. */
export const AUDIT_APPEND = `
for i = 2, #ARGV do redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i]) end
return #ARGV - 1
`;
