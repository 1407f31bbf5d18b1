import { LUA_SCHEMA } from "./schema.js";

/** Revocation in Lua: a grant and its subtree, one token, and the bulk walk's purge of a tree. */

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
 * → {'none'} | {'already' | 'revoked', grantId, tokenId, root, parent, agent, issuedAt, onBehalfOf}
 */
export const REVOKE_TOKEN = `${LUA_SCHEMA}
local base, now = ARGV[1], tonumber(ARGV[2])
local hash = redis.call('GET', KEYS[1])
if not hash then return {'none'} end
local tkey = base .. K.token .. hash
local t = redis.call('HMGET', tkey, unpack(TOKEN_READ))
if not t[TR.grantId] or tonumber(t[TR.expiresAt]) <= now then return {'none'} end
local g = redis.call('HMGET', base .. K.grant .. t[TR.grantId], F.rootId, F.parentId, F.agent, F.onBehalfOf)
local status = 'revoked'
if t[TR.revokedAt] then status = 'already' else redis.call('HSET', tkey, T.revokedAt, ARGV[2]) end
return {status, t[TR.grantId], t[TR.tokenId], g[1] or '', g[2] or '', g[3] or '', t[TR.issuedAt], g[4] or ''}
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
