import type { ScopeConfig } from "../config/types.js";

/** The configured scopes of an upstream that allow this method on this (already checked) path. */
export const matchScopes = (scopes: readonly ScopeConfig[], method: string, path: string): ScopeConfig[] => {
  const matched: ScopeConfig[] = [];
  for (const scope of scopes) {
    if (!scope.methods.has(method)) continue;
    for (const matcher of scope.matchers) {
      if (matcher.test(path)) {
        matched.push(scope);
        break;
      }
    }
  }
  return matched;
};
