import type { RevocationSelector } from "@perishable/protocol";

/**
 * A bulk revocation as the broker enforces it: the selector, plus a cutoff that is open while the
 * walk runs (so grants created meanwhile are caught too) and closed a little after it ends (so
 * authority granted after the kill is not). It expires when nothing it selected can be alive.
 */
export interface RevocationRule {
  readonly id: string;
  readonly selector: RevocationSelector;
  readonly by: string;
  readonly createdAt: number;
  /** Grants created after this are not selected; null while the walk runs. */
  readonly cutoff: number | null;
  readonly expiresAt: number;
}

/** What a rule looks at in a grant. */
export interface RuleSubject {
  readonly agent: string;
  /** The lineage's onBehalfOf ("" or undefined: none). */
  readonly onBehalfOf?: string | undefined;
  readonly scopes: readonly string[];
  readonly rootId: string;
  readonly createdAt: number;
}

/** The rule's bounds on a grant's creation time, with the cutoff folded in (ms; undefined = open). */
export const ruleWindow = (
  rule: RevocationRule,
): { after: number | undefined; before: number | undefined } => {
  const { issuedAfter, issuedBefore } = rule.selector;
  const before = [issuedBefore ? Date.parse(issuedBefore) : undefined, rule.cutoff ?? undefined].filter(
    (v): v is number => v !== undefined,
  );
  return {
    after: issuedAfter ? Date.parse(issuedAfter) : undefined,
    before: before.length ? Math.min(...before) : undefined,
  };
};

/** Whether a rule selects a grant. The Lua `ruled()` in the Redis scripts is the same test. */
export const ruleSelects = (rule: RevocationRule, grant: RuleSubject): boolean => {
  const { agent, scope, rootGrantId, onBehalfOf } = rule.selector;
  const { after, before } = ruleWindow(rule);
  return (
    (agent === undefined || agent === grant.agent) &&
    (rootGrantId === undefined || rootGrantId === grant.rootId) &&
    (onBehalfOf === undefined || onBehalfOf === grant.onBehalfOf) &&
    (after === undefined || grant.createdAt > after) &&
    (before === undefined || grant.createdAt <= before) &&
    (scope === undefined || grant.scopes.includes(scope))
  );
};

/** The rule in the scripts' argument form: id, agent, scope, root, after, before, onBehalfOf (tab-separated). */
export const encodeRule = (rule: RevocationRule): string => {
  const { after, before } = ruleWindow(rule);
  const s = rule.selector;
  return [
    rule.id,
    s.agent ?? "",
    s.scope ?? "",
    s.rootGrantId ?? "",
    after ?? "",
    before ?? "",
    s.onBehalfOf ?? "",
  ].join("\t");
};
