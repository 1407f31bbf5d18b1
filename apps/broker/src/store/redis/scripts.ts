/**
 * Lua scripts, registered once with ioredis `defineCommand` (EVALSHA, EVAL on NOSCRIPT).
 *
 * Every script touches only keys of one lineage tree: the declared KEYS and keys built from
 * ARGV[1], the tree's base (`<prefix>:{<tree>}:`), so each runs in one Cluster slot. The key
 * suffixes used here (`g:`, `rl:`) are the ones `keys.ts` documents.
 *
 * Results are flat arrays of strings. A denial is
 *   { code, grantId, tokenId, rootGrantId, parentGrantId, agent, issuedAt, rule, retryAfterMs }
 * with "" for what is unknown; see `decode.ts`.
 */

/** Shared by every script that acts on a presented token: token → grant → every ancestor. */
const CHAIN = `
local function fail(code, t, g, rule, extra)
  t = t or {}
  g = g or {}
  return {code, t[1] or '', t[2] or '', g[4] or '', g[5] or '', g[6] or '', t[3] or '', rule or '', extra or ''}
end

-- Grant fields read by chain(): index 1..11 of g.
-- na rev anc root par agent scopes mu used ttl mt
-- Returns t, g and the ancestors as {id, mu, used} (root first) for the maxUses checks.
local function chain(base, tkey, now)
  local t = redis.call('HMGET', tkey, 'g', 'i', 'a', 'e', 'r')
  if not t[1] then return nil, fail('token_invalid') end
  local g = redis.call('HMGET', base .. 'g:' .. t[1], 'na', 'rev', 'anc', 'root', 'par', 'agent', 'scopes', 'mu', 'used', 'ttl', 'mt')
  if t[5] then return nil, fail('token_revoked', t, g, 'token ' .. t[2]) end
  if not g[1] then return nil, fail('token_invalid', t, g) end
  if g[2] then return nil, fail('token_revoked', t, g, 'grant ' .. t[1]) end
  local ancestors = {}
  if g[3] and g[3] ~= '' then
    for aid in string.gmatch(g[3], '[^,]+') do
      local a = redis.call('HMGET', base .. 'g:' .. aid, 'na', 'rev', 'mu', 'used')
      if (not a[1]) or a[2] then return nil, fail('token_revoked', t, g, 'ancestor ' .. aid) end
      ancestors[#ancestors + 1] = {aid, tonumber(a[3]), tonumber(a[4]) or 0}
    end
  end
  if tonumber(g[1]) <= now then return nil, fail('token_expired', t, g, 'grant notAfter') end
  if tonumber(t[4]) <= now then return nil, fail('token_expired', t, g, 'token') end
  return t, g, ancestors
end
`;

/**
 * KEYS[1] token key. ARGV: base, now, n, then n × (scope, pass 1|0, limit, windowMs).
 * → {'ok', grantId, tokenId, root, parent, agent, issuedAt, scope} or a denial.
 */
export const AUTHORIZE = `${CHAIN}
local base, now, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t, g, ancestors = chain(base, KEYS[1], now)
if not t then return g end
local held = {}
for s in string.gmatch(g[7], '[^,]+') do held[s] = true end
local chosen, failed = nil, nil
for i = 0, n - 1 do
  local name = ARGV[4 + i * 4]
  if held[name] then
    if ARGV[5 + i * 4] == '1' then chosen = i break end
    if not failed then failed = name end
  end
end
if not chosen then
  if failed then return fail('constraint_denied', t, g, failed) end
  return fail('scope_denied', t, g)
end
local o = 4 + chosen * 4
local scope, limit, window = ARGV[o], tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
-- maxUses of the grant and of every ancestor that has one: a use by a child is a use of each.
local spend = {}
local mu = tonumber(g[8])
if mu then
  if (tonumber(g[9]) or 0) >= mu then return fail('forbidden', t, g, 'maxUses ' .. g[8]) end
  spend[1] = t[1]
end
for _, a in ipairs(ancestors) do
  if a[2] then
    if a[3] >= a[2] then return fail('forbidden', t, g, 'maxUses ' .. a[2] .. ' of ancestor ' .. a[1]) end
    spend[#spend + 1] = a[1]
  end
end
if limit > 0 then
  -- Sliding window over the grant and every ancestor: a child never spends more than its
  -- parent may, and a parent cannot multiply its rate by delegating.
  local cur = math.floor(now / window)
  local into = now - cur * window
  local ids = {t[1]}
  for _, a in ipairs(ancestors) do ids[#ids + 1] = a[1] end
  local counters = {}
  for i, id in ipairs(ids) do
    local k = base .. 'rl:' .. id .. ':' .. scope .. ':'
    local v = redis.call('MGET', k .. cur, k .. (cur - 1))
    local c, p = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    local est = p * (window - into) / window + c
    if est + 1 > limit then
      local wait
      if c + 1 > limit or p == 0 then wait = window - into else wait = math.ceil((est + 1 - limit) * window / p) end
      local rule = scope
      if i > 1 then rule = scope .. ' (ancestor ' .. id .. ')' end
      return fail('rate_limited', t, g, rule, tostring(wait))
    end
    counters[i] = k .. cur
  end
  for _, k in ipairs(counters) do
    if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, window * 2) end
  end
end
for _, id in ipairs(spend) do redis.call('HINCRBY', base .. 'g:' .. id, 'used', 1) end
return {'ok', t[1], t[2], g[4], g[5], g[6], t[3], scope}
`;

/**
 * KEYS: grant, token, tokenId, tree[, parent token]. ARGV: base, now, grantId, tokenId, hash,
 * issuedAt, expiresAt, grantExpireAt, tokenExpireAt, parentId ('' for a root), then field/value
 * pairs of the grant record. → {'ok'} or a denial about the parent token.
 */
export const CREATE = `${CHAIN}
if KEYS[5] then
  local t, g = chain(ARGV[1], KEYS[5], tonumber(ARGV[2]))
  if not t then return g end
  if t[1] ~= ARGV[10] then return fail('token_invalid', t, g, 'parent mismatch') end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('PEXPIREAT', KEYS[1], ARGV[8])
redis.call('HSET', KEYS[2], 'g', ARGV[3], 'i', ARGV[4], 'a', ARGV[6], 'e', ARGV[7])
redis.call('PEXPIREAT', KEYS[2], ARGV[9])
redis.call('SET', KEYS[3], ARGV[5], 'PXAT', ARGV[9])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[10])
if ARGV[10] == '' then redis.call('PEXPIREAT', KEYS[4], ARGV[8]) end
return {'ok'}
`;

/**
 * KEYS: presented token, new token, new tokenId. ARGV: base, now, tokenId, hash, ttl (0 = the
 * grant's default), grace. → {'ok', tokenId, grantId, issuedAt, expiresAt, ...grant fields} or a denial.
 */
export const REFRESH = `${CHAIN}
local base, now = ARGV[1], tonumber(ARGV[2])
local t, g = chain(base, KEYS[1], now)
if not t then return g end
local ttl = tonumber(ARGV[5])
if ttl == 0 then ttl = tonumber(g[10]) end
if ttl > tonumber(g[11]) then return fail('ttl_exceeded', t, g, 'max_ttl') end
local e = math.min(now + ttl, tonumber(g[1]))
redis.call('HSET', KEYS[2], 'g', t[1], 'i', ARGV[3], 'a', ARGV[2], 'e', e)
redis.call('PEXPIREAT', KEYS[2], e + tonumber(ARGV[6]))
redis.call('SET', KEYS[3], ARGV[4], 'PXAT', e + tonumber(ARGV[6]))
local out = {'ok', ARGV[3], t[1], ARGV[2], tostring(e)}
local fields = redis.call('HGETALL', base .. 'g:' .. t[1])
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
`;

/** KEYS[1] token key. ARGV: base, now. → {'ok', tokenId, grantId, issuedAt, expiresAt, ...grant fields}. */
export const INSPECT = `${CHAIN}
local base, now = ARGV[1], tonumber(ARGV[2])
local t, g = chain(base, KEYS[1], now)
if not t then return g end
local out = {'ok', t[2], t[1], t[3], t[4]}
local fields = redis.call('HGETALL', base .. 'g:' .. t[1])
for i = 1, #fields do out[#out + 1] = fields[i] end
return out
`;

/** KEYS[1] tree key. ARGV: base, grantId, now. Marks the grant and its live subtree revoked → count. */
export const REVOKE_GRANT = `
local base, now = ARGV[1], tonumber(ARGV[3])
local links = redis.call('HGETALL', KEYS[1])
local children = {}
for i = 1, #links, 2 do
  local parent = links[i + 1]
  if parent ~= '' then
    local list = children[parent]
    if not list then list = {} children[parent] = list end
    list[#list + 1] = links[i]
  end
end
local queue, i, count = {ARGV[2]}, 1, 0
while i <= #queue do
  local id = queue[i]
  i = i + 1
  local key = base .. 'g:' .. id
  local g = redis.call('HMGET', key, 'na', 'rev')
  if g[1] and not g[2] and tonumber(g[1]) > now then
    redis.call('HSET', key, 'rev', ARGV[3])
    count = count + 1
  end
  for _, c in ipairs(children[id] or {}) do queue[#queue + 1] = c end
end
return count
`;
