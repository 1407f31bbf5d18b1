/** What matching needs of a scope (config/types.ts `ScopeConfig` has it): policy does not know the config. */
export interface Routable {
  readonly methods: ReadonlySet<string>;
  readonly matchers: readonly RegExp[];
}

/** The configured scopes of an upstream that allow this method on this (already checked) path. */
export const matchScopes = <S extends Routable>(scopes: readonly S[], method: string, path: string): S[] => {
  const matched: S[] = [];
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
