import type { AdminGrantView } from "@perishable/protocol";

const usd = (n: number): string =>
  `$${n < 0.01 && n > 0 ? Number(n.toPrecision(2)).toFixed(Math.max(2, 1 - Math.floor(Math.log10(n)))) : Number(n.toFixed(4))}`;

/** `$0.012 of $5` (+ held, tokens, in flight), or null for a lineage without budgets or slots. */
export const spendLine = (spend: AdminGrantView["spend"]): string | null => {
  if (!spend) return null;
  const { usd: u, tokens: t } = spend;
  const parts = [
    `${usd(u.spent)}${u.limit === null ? "" : ` of ${usd(u.limit)}`}${u.reserved > 0 ? ` (+${usd(u.reserved)} held)` : ""}`,
  ];
  if (t.limit !== null) parts.push(`${t.spent} of ${t.limit} tokens`);
  if (spend.maxConcurrent !== null) parts.push(`${spend.inFlight} of ${spend.maxConcurrent} in flight`);
  return parts.join(" · ");
};

/** The fraction of the tightest limit used (spent + held), 0..1, or null without a limit. */
export const used = (spend: AdminGrantView["spend"]): number | null => {
  if (!spend) return null;
  const fractions = [spend.usd, spend.tokens]
    .filter((u) => u.limit !== null && u.limit > 0)
    .map((u) => Math.min(1, (u.spent + u.reserved) / u.limit!));
  return fractions.length ? Math.max(...fractions) : null;
};

/** Live lineages by what their root has spent, most first (the top `n` that spent anything). */
export const topSpenders = (grants: readonly AdminGrantView[], n = 5): AdminGrantView[] =>
  grants
    .filter((g) => g.parentGrantId === null && (g.spend?.usd.spent ?? 0) > 0)
    .sort((a, b) => (b.spend?.usd.spent ?? 0) - (a.spend?.usd.spent ?? 0))
    .slice(0, n);

export { usd };
