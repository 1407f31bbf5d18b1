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
    g[GR.agent] or '', t[TR.issuedAt] or '', kind or '', value or '', ancestor or '', extra or ''}
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
local function ruled(agent, scopes, root, ca)
  if nrules == 0 then return nil end
  ca = tonumber(ca) or 0
  for _, r in ipairs(rules) do
    if (r[2] == '' or r[2] == agent)
      and (r[4] == '' or r[4] == root)
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
  local hit = ruled(g[GR.agent], g[GR.scopes], g[GR.rootId], g[GR.createdAt])
  if hit then return nil, fail('token_revoked', t, g, 'rule', hit) end
  local ancestors = {}
  if g[GR.ancestors] ~= '' then
    for aid in string.gmatch(g[GR.ancestors], '[^,]+') do
      local a = redis.call('HMGET', base .. K.grant .. aid, unpack(ANCESTOR_READ))
      if (not a[AR.notAfter]) or a[AR.revokedAt] then return nil, fail('token_revoked', t, g, 'ancestor', aid) end
      hit = ruled(a[AR.agent], a[AR.scopes], g[GR.rootId], a[AR.createdAt])
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
 * KEYS[1] token key. ARGV from o: n, then n × (scope, pass 1|0, limit, windowMs), then 1 when
 * the caller wants the chain's rule facts.
 * → {'ok', grantId, tokenId, root, parent, agent, issuedAt, scope} or a denial; with the facts,
 * then expiresAt and (agent, scopes, createdAt) of the grant and of each ancestor. Those never
 * change, so a node keeps them per token to send only the rules that could select it.
 */
export const AUTHORIZE = `${CHAIN}
local t, g, ancestors = chain(KEYS[1])
if not t then return g end
local n = tonumber(ARGV[o])
local held = {}
for s in string.gmatch(g[GR.scopes], '[^,]+') do held[s] = true end
local chosen, failed = nil, nil
for i = 0, n - 1 do
  local name = ARGV[o + 1 + i * 4]
  if held[name] then
    if ARGV[o + 2 + i * 4] == '1' then chosen = i break end
    if not failed then failed = name end
  end
end
if not chosen then
  if failed then return fail('constraint_denied', t, g, 'constraint', failed) end
  return fail('scope_denied', t, g)
end
local c = o + 1 + chosen * 4
local scope, limit, window = ARGV[c], tonumber(ARGV[c + 2]), tonumber(ARGV[c + 3])
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
if limit > 0 then
  -- Sliding window over the grant and every ancestor: a child never spends more than its
  -- parent may, and a parent cannot multiply its rate by delegating.
  local cur = math.floor(now / window)
  local into = now - cur * window
  local ids = {t[TR.grantId]}
  for _, a in ipairs(ancestors) do ids[#ids + 1] = a.id end
  local counters = {}
  for i, id in ipairs(ids) do
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
  for _, k in ipairs(counters) do
    if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, window * 2) end
  end
end
for _, id in ipairs(spend) do redis.call('HINCRBY', base .. K.grant .. id, F.used, 1) end
local out = {'ok', t[TR.grantId], t[TR.tokenId], g[GR.rootId], g[GR.parentId], g[GR.agent], t[TR.issuedAt], scope}
if ARGV[o + 1 + n * 4] == '1' then
  out[#out + 1] = t[TR.expiresAt]
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
local out = {'ok', g[GR.rootId], t[TR.expiresAt], g[GR.agent], g[GR.scopes], g[GR.createdAt] or '0'}
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

/** Builds a grant id → children map from the tree hash, and walks the subtree of the given ids. */
const SUBTREE = `${LUA_SCHEMA}
local function subtree(treeKey, roots)
  local links = redis.call('HGETALL', treeKey)
  local children = {}
  for i = 1, #links, 2 do
    local parent = links[i + 1]
    if parent ~= '' then
      local list = children[parent]
      if not list then list = {} children[parent] = list end
      list[#list + 1] = links[i]
    end
  end
  local queue, seen, i = {}, {}, 1
  for _, id in ipairs(roots) do
    if not seen[id] then seen[id] = true queue[#queue + 1] = id end
  end
  while i <= #queue do
    for _, c in ipairs(children[queue[i]] or {}) do
      if not seen[c] then seen[c] = true queue[#queue + 1] = c end
    end
    i = i + 1
  end
  return queue
end
`;

/** KEYS[1] tree key. ARGV: base, grantId, now. Marks the grant and its live subtree revoked → the ids it revoked. */
export const REVOKE_GRANT = `${SUBTREE}
local base, now = ARGV[1], tonumber(ARGV[3])
local revoked = {}
for _, id in ipairs(subtree(KEYS[1], {ARGV[2]})) do
  local key = base .. K.grant .. id
  local g = redis.call('HMGET', key, F.notAfter, F.revokedAt)
  if g[1] and not g[2] and tonumber(g[1]) > now then
    redis.call('HSET', key, F.revokedAt, ARGV[3])
    revoked[#revoked + 1] = id
  end
end
return revoked
`;

/**
 * KEYS[1] tokenId key. ARGV: base, now. Marks one token revoked.
 * → {'none'} | {'already' | 'revoked', grantId, tokenId, root, parent, agent, issuedAt}
 */
export const REVOKE_TOKEN = `${LUA_SCHEMA}
local base, now = ARGV[1], tonumber(ARGV[2])
local hash = redis.call('GET', KEYS[1])
if not hash then return {'none'} end
local tkey = base .. K.token .. hash
local t = redis.call('HMGET', tkey, unpack(TOKEN_READ))
if not t[TR.grantId] or tonumber(t[TR.expiresAt]) <= now then return {'none'} end
local g = redis.call('HMGET', base .. K.grant .. t[TR.grantId], F.rootId, F.parentId, F.agent)
local status = 'revoked'
if t[TR.revokedAt] then status = 'already' else redis.call('HSET', tkey, T.revokedAt, ARGV[2]) end
return {status, t[TR.grantId], t[TR.tokenId], g[1] or '', g[2] or '', g[3] or '', t[TR.issuedAt]}
`;

/**
 * The bulk walk's delete step, for one tree. KEYS[1] tree key. ARGV: base, now, tombExpireAt,
 * then grant ids. Deletes the grants, their subtrees and every token of them, and leaves a
 * tombstone so their tokens are refused as revoked.
 * → {grants revoked (live ones), tokens deleted, every grant id deleted}
 */
export const PURGE = `${SUBTREE}
local base, now = ARGV[1], tonumber(ARGV[2])
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local grants, tokens = 0, 0
local gone = subtree(KEYS[1], ids)
for _, id in ipairs(gone) do
  local gkey = base .. K.grant .. id
  local g = redis.call('HMGET', gkey, F.notAfter, F.revokedAt)
  if g[1] and not g[2] and tonumber(g[1]) > now then grants = grants + 1 end
  local set = base .. K.tokenSet .. id
  for _, tid in ipairs(redis.call('SMEMBERS', set)) do
    local tikey = base .. K.tokenId .. tid
    local hash = redis.call('GET', tikey)
    if hash then tokens = tokens + redis.call('UNLINK', base .. K.token .. hash) end
    redis.call('UNLINK', tikey)
  end
  redis.call('UNLINK', set, gkey)
  redis.call('HDEL', KEYS[1], id)
end
local tomb = base .. K.tomb
local left = redis.call('PTTL', tomb)
if left < 0 or now + left < tonumber(ARGV[3]) then redis.call('SET', tomb, '1', 'PXAT', ARGV[3]) end
return {grants, tokens, gone}
`;
