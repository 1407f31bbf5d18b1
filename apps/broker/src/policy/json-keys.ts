/** Case folding as the most lenient JSON readers do it (`ſ` → s, `K` (Kelvin) → k). */
export const fold = (key: string): string => key.toUpperCase().toLowerCase();

/**
 * A key of one object that differs from another of it only in case, or undefined: a reader that
 * folds case (Go's encoding/json) could take either, so the broker must not check just one.
 */
export const caseVariant = (o: Readonly<Record<string, unknown>>): string | undefined => {
  const seen = new Set<string>();
  for (const key of Object.keys(o)) {
    const folded = fold(key);
    if (seen.has(folded)) return key;
    seen.add(folded);
  }
  return undefined;
};
