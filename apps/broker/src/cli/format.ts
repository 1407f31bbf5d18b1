import { type AdminGrantView, type AuditEvent, neutralize } from "@perishable/protocol";

// Everything printed here comes from the broker's API, and much of it from agents and callers
// (names, paths, rules, identity subjects): each cell and line is neutralized before it reaches
// the operator's terminal, so no escape sequence, CR or newline in it can forge what they see.

/** "in 42s", "3m ago", "in 2h 5m": a time relative to now, for people. */
export const relative = (iso: string | null, now = Date.now()): string => {
  if (!iso) return "-";
  const ms = Date.parse(iso) - now;
  const s = Math.round(Math.abs(ms) / 1000);
  const text =
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m ${s % 60}s`
        : s < 86_400
          ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
          : `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
};

/** A plain-text table: a header row, columns padded to their widest cell. */
export const table = (header: readonly string[], cells: readonly (readonly string[])[]): string => {
  const rows = cells.map((row) => row.map(neutralize));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
};

export const grantRow = (g: AdminGrantView, now = Date.now()): string[] => [
  g.grantId,
  g.agent,
  g.scopes.join(","),
  String(g.depth),
  g.status,
  g.status === "live" ? relative(g.tokenExpiresAt, now) : "-",
  relative(g.notAfter, now),
  spendText(g.spend),
];

export const GRANT_HEADER = [
  "GRANT",
  "AGENT",
  "SCOPES",
  "DEPTH",
  "STATUS",
  "TOKEN EXPIRES",
  "ENDS",
  "SPEND",
] as const;

/** `$0.0123 / $5 (+$0.002 held) · 3 in flight`, or "-" for a lineage without budgets or slots. */
export const spendText = (spend: AdminGrantView["spend"]): string => {
  if (!spend) return "-";
  const usd = (n: number) => `$${Number(n.toFixed(6))}`;
  const parts: string[] = [];
  const { usd: u, tokens: t } = spend;
  parts.push(
    `${usd(u.spent)}${u.limit === null ? "" : ` / ${usd(u.limit)}`}${u.reserved > 0 ? ` (+${usd(u.reserved)} held)` : ""}`,
  );
  if (t.limit !== null || t.spent > 0)
    parts.push(`${t.spent}${t.limit === null ? "" : ` / ${t.limit}`} tokens`);
  if (spend.maxConcurrent !== null || spend.inFlight > 0)
    parts.push(
      `${spend.inFlight}${spend.maxConcurrent === null ? "" : ` / ${spend.maxConcurrent}`} in flight`,
    );
  return parts.join(" · ");
};

const describeGrant = (g: AdminGrantView, now: number): string => {
  const state = g.status === "live" ? `live, token expires ${relative(g.tokenExpiresAt, now)}` : g.status;
  const identity =
    g.depth === 0 && g.identity ? `  (identity ${g.identity.subject} from ${g.identity.issuer})` : "";
  const spend = g.spend ? `  spent ${spendText(g.spend)}` : "";
  return `${g.grantId}  ${g.agent}  [${g.scopes.join(", ")}]  ${state}${spend}${identity}`;
};

/**
 * A lineage drawn as a tree, root at the top; `mark` (the grant asked about) gets an arrow.
 *
 *   gr_…  planner  [llm:complete]  live, token expires in 42s
 *   ├── gr_…  researcher  [llm:complete]  live, …
 *   │   └── gr_…  …
 *   └── gr_…  writer  …  revoked
 */
export const drawTree = (
  root: AdminGrantView,
  subtree: readonly AdminGrantView[],
  mark: string,
  now = Date.now(),
): string => {
  const children = new Map<string, AdminGrantView[]>();
  for (const g of subtree) {
    if (!g.parentGrantId) continue;
    children.set(g.parentGrantId, [...(children.get(g.parentGrantId) ?? []), g]);
  }
  const lines: string[] = [];
  const walk = (g: AdminGrantView, prefix: string, connector: string) => {
    lines.push(`${prefix}${connector}${neutralize(describeGrant(g, now))}${g.grantId === mark ? "  ◀" : ""}`);
    const kids = children.get(g.grantId) ?? [];
    const childPrefix = prefix + (connector === "" ? "" : connector === "└── " ? "    " : "│   ");
    for (const [i, kid] of kids.entries()) walk(kid, childPrefix, i === kids.length - 1 ? "└── " : "├── ");
  };
  walk(root, "", "");
  return lines.join("\n");
};

/** One audit event on one line. */
export const auditLine = (e: AuditEvent): string => {
  const time = e.at.slice(11, 23);
  const who = [e.agent ?? "-", e.grantId ?? "-"].join("  ");
  const what = (() => {
    switch (e.type) {
      case "used":
        return `${e.method} ${e.upstream}${e.path} → ${e.status} (${e.totalMs} ms)${e.model ? ` ${e.model}` : ""}`;
      case "denied":
        return `${e.code}${e.rule ? `: ${e.rule}` : ""}${e.path ? ` (${e.method} ${e.upstream ?? ""}${e.path})` : ""}`;
      case "revoked":
        return `by ${e.by}, ${e.count ?? 0} revoked${e.selector ? ` ${JSON.stringify(e.selector)}` : ""}`;
      case "expired":
        return `reason ${e.reason}`;
      case "refreshed":
        return `expires ${e.expiresAt}`;
      case "issued":
      case "delegated":
        return `[${e.scopes.join(", ")}] expires ${e.expiresAt}${e.parentGrantId ? ` parent ${e.parentGrantId}` : ""}`;
    }
  })();
  return neutralize(`${time}  ${e.type.padEnd(9)}  ${who}  ${what}`);
};
