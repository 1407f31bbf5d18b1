import type { AdminTokenView, AuditEventType, AuditPage, GrantDetail, GrantList } from "@perishable/protocol";
import { BrokerError } from "../errors.js";
import type { AdminContext } from "./context.js";
import { adminGrantView } from "./views.js";

export const listGrants = async (
  ctx: AdminContext,
  filter: { agent?: string; scope?: string; rootGrantId?: string },
  cursor: string | null,
  limit: number,
): Promise<GrantList> => {
  const now = ctx.now();
  const page = await ctx.store.listGrants(filter, cursor, limit, now);
  return { grants: page.grants.map((g) => adminGrantView(g, now)), next: page.next };
};

export const grantDetail = async (ctx: AdminContext, grantId: string): Promise<GrantDetail> => {
  const now = ctx.now();
  const lineage = await ctx.store.getLineage(grantId, now);
  if (!lineage) throw new BrokerError("not_found", `no grant ${grantId}`);
  // What is open under it, on every node: the console shows it, and what a revocation would cut.
  const live = await ctx.store.askLive({ grants: [grantId] });
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    grant: adminGrantView(lineage.grant, now),
    ancestors: lineage.ancestors.map((g) => adminGrantView(g, now)),
    subtree: lineage.subtree.map((g) => adminGrantView(g, now)),
    live: {
      connections: live.answers.map((c) => ({ ...c, openedAt: iso(c.openedAt) })),
      nodes: live.nodes,
      missing: live.missing,
    },
  };
};

export const tokenDetail = async (ctx: AdminContext, tokenId: string): Promise<AdminTokenView> => {
  const now = ctx.now();
  const token = await ctx.store.getToken(tokenId, now);
  if (!token) throw new BrokerError("not_found", `no token ${tokenId}`);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    tokenId: token.tokenId,
    grantId: token.grantId,
    issuedAt: iso(token.issuedAt),
    expiresAt: iso(token.expiresAt),
    status: token.revoked ? "revoked" : token.expiresAt <= now ? "expired" : "live",
  };
};

export interface AuditFilters {
  readonly after?: string;
  readonly since?: number;
  readonly grantId?: string;
  readonly rootGrantId?: string;
  readonly agent?: string;
  readonly type?: AuditEventType;
  readonly limit: number;
}

export const readAudit = async (ctx: AdminContext, filters: AuditFilters): Promise<AuditPage> => {
  await ctx.audit.flush();
  const read = await ctx.store.readAudit(filters);
  return { events: read.records.map((r) => ({ id: r.id, ...r.event })), next: read.next };
};
