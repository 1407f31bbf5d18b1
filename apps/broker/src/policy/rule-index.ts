import { type RevocationRule, type RuleSubject, ruleSelects } from "./revocation.js";

/**
 * Live revocation rules, indexed by what they select, so that authorising a request costs the
 * rules that could select it, not every rule there is: a rule naming an agent is looked up by
 * that agent, one naming a root grant by that root, one naming only a scope by that scope. Only
 * rules that name none of these (a time window alone, or everything) are scanned; those are the
 * kill switches, and they select nearly everything anyway.
 */
export class RuleIndex {
  readonly #byAgent = new Map<string, RevocationRule[]>();
  readonly #byRoot = new Map<string, RevocationRule[]>();
  readonly #byOnBehalfOf = new Map<string, RevocationRule[]>();
  readonly #byScope = new Map<string, RevocationRule[]>();
  readonly #open: RevocationRule[] = [];
  readonly size: number;

  constructor(rules: readonly RevocationRule[]) {
    this.size = rules.length;
    for (const rule of rules) {
      const { agent, rootGrantId, scope, onBehalfOf } = rule.selector;
      if (agent !== undefined) push(this.#byAgent, agent, rule);
      else if (rootGrantId !== undefined) push(this.#byRoot, rootGrantId, rule);
      else if (onBehalfOf !== undefined) push(this.#byOnBehalfOf, onBehalfOf, rule);
      else if (scope !== undefined) push(this.#byScope, scope, rule);
      else this.#open.push(rule);
    }
  }

  /** The rules that select at least one of these grants (a grant and its ancestors), oldest first. */
  selecting(grants: readonly RuleSubject[], now: number): RevocationRule[] {
    if (this.size === 0) return [];
    const found = new Set<RevocationRule>();
    const consider = (rules: readonly RevocationRule[] | undefined) => {
      if (!rules) return;
      for (const rule of rules) {
        if (rule.expiresAt > now && !found.has(rule) && grants.some((g) => ruleSelects(rule, g)))
          found.add(rule);
      }
    };
    for (const grant of grants) {
      consider(this.#byAgent.get(grant.agent));
      consider(this.#byRoot.get(grant.rootId));
      if (grant.onBehalfOf) consider(this.#byOnBehalfOf.get(grant.onBehalfOf));
      for (const scope of grant.scopes) consider(this.#byScope.get(scope));
    }
    consider(this.#open);
    return [...found].sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The first rule that selects this grant (the memory store's check; the Lua `ruled()` is the same test). */
  first(grant: RuleSubject, now: number): RevocationRule | undefined {
    return this.selecting([grant], now)[0];
  }
}

const push = (map: Map<string, RevocationRule[]>, key: string, rule: RevocationRule) => {
  const list = map.get(key);
  if (list) list.push(rule);
  else map.set(key, [rule]);
};
