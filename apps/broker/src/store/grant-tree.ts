import type { GrantFilter, GrantRecord, GrantState } from "./types.js";

/**
 * Pure reads of grants that both stores share (the memory store is the readable spec of the Redis
 * one, so what they decide the same way is written once).
 */

/** The grant and every grant below it, parents before children, from the tree links (id → parent). */
export const subtreeOf = (links: Readonly<Record<string, string>>, rootId: string): string[] => {
  const children = new Map<string, string[]>();
  for (const [id, parent] of Object.entries(links)) {
    if (parent) children.set(parent, [...(children.get(parent) ?? []), id]);
  }
  const out = [rootId];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
};

export const isLive = (state: GrantState, now: number): boolean =>
  state.revokedAt === null && state.grant.notAfter > now;

export const matchesFilter = (grant: GrantRecord, filter: GrantFilter): boolean =>
  (filter.agent === undefined || grant.agent === filter.agent) &&
  (filter.scope === undefined || grant.scopes.includes(filter.scope)) &&
  (filter.rootGrantId === undefined || grant.rootId === filter.rootGrantId);
