import { windowWait } from "../sliding-window.js";
import type { AuthorizeResult, Candidate, Denied, Lease, Subject, TokenRef } from "../types.js";
import { checkFlight, takeFlight } from "./flights.js";
import { deny, type MemoryState, type StoredGrant, subjectOf } from "./state.js";

/**
 * A proxied call's check and spend, as AUTHORIZE does it in Lua: the chain, the first candidate
 * scope the grant holds whose constraints pass, maxUses of the grant and of every ancestor, the
 * sliding window on the grant and every ancestor, then (a tracked lineage) budgets and slots;
 * count and reserve only when every check passed.
 */
export const authorize = (
  state: MemoryState,
  ref: TokenRef,
  now: number,
  candidates: readonly Candidate[],
  lease: Lease,
): AuthorizeResult => {
  const chain = state.chain(ref, now);
  if (!chain.ok) return chain;
  const { token, grant } = chain;
  const subject = subjectOf(token, grant);
  const held = new Set(grant.record.scopes);
  let chosen: Candidate | undefined;
  let failed: string | undefined;
  for (const c of candidates) {
    if (!held.has(c.scope)) continue;
    if (c.pass) {
      chosen = c;
      break;
    }
    failed ??= c.scope;
  }
  if (!chosen)
    return failed
      ? deny("constraint_denied", subject, { kind: "constraint", scope: failed })
      : deny("scope_denied", subject, null);
  // maxUses of the grant and of every ancestor that has one: a use by a child is a use of each.
  const spend: StoredGrant[] = [];
  const { maxUses } = grant.record;
  if (maxUses !== null) {
    if (grant.used >= maxUses) return deny("forbidden", subject, { kind: "uses", limit: maxUses });
    spend.push(grant);
  }
  for (const ancestor of chain.ancestors) {
    const limit = ancestor.record.maxUses;
    if (limit === null) continue;
    if (ancestor.used >= limit)
      return deny("forbidden", subject, { kind: "uses", limit, ancestor: ancestor.record.id });
    spend.push(ancestor);
  }
  // The grant and every ancestor, nearest first: the levels a rate, a budget and a slot count on.
  const levels = [grant, ...[...chain.ancestors].reverse()];
  const rated = rateWindow(state, levels, chosen, now, subject);
  if (!Array.isArray(rated)) return rated;
  const keys = rated;
  const tracked = grant.record.tracked === true;
  const checked = tracked
    ? checkFlight(state, grant.record.tree, levels, chosen.worst, chosen.scope, subject, now)
    : undefined;
  if (checked && "denied" in checked) return checked.denied;
  // Every check passed: count.
  for (const key of keys) {
    const counter = state.counters.get(key);
    if (counter && counter.expireAt > now) counter.count += 1;
    else state.counters.set(key, { count: 1, expireAt: now + chosen.windowMs * 2 });
  }
  for (const g of spend) g.used += 1;
  const flight = tracked ? takeFlight(state, grant.record.tree, levels, chosen.worst, lease) : null;
  const left = checked?.left;
  return {
    ok: true,
    subject,
    scope: chosen.scope,
    flight,
    notAfter: grant.record.notAfter,
    ...(left ? { left } : {}),
  };
};

/** The sliding window of the scope on every level: a denial, or the counters to count. */
const rateWindow = (
  state: MemoryState,
  levels: readonly StoredGrant[],
  chosen: Candidate,
  now: number,
  subject: Subject,
): string[] | Denied<"rate_limited"> => {
  const keys: string[] = [];
  if (chosen.limit > 0) {
    const window = chosen.windowMs;
    const cur = Math.floor(now / window);
    const into = now - cur * window;
    for (const [i, level] of levels.entries()) {
      const id = level.record.id;
      const base = `${level.record.tree}:${id}:${chosen.scope}:`;
      const wait = windowWait({
        current: state.count(`${base}${cur}`, now),
        previous: state.count(`${base}${cur - 1}`, now),
        windowMs: window,
        into,
        limit: chosen.limit,
      });
      if (wait !== undefined) {
        const reason = { kind: "rate", scope: chosen.scope, ...(i === 0 ? {} : { ancestor: id }) } as const;
        return { ...deny("rate_limited", subject, reason), retryAfterMs: wait };
      }
      keys.push(`${base}${cur}`);
    }
  }
  return keys;
};
