import {
  AgentName,
  AUDIT_EVENT_TYPES,
  GrantId,
  RevocationSelector,
  ScopeName,
  TokenId,
} from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Actor, AdminContext } from "../admin/context.js";
import { grantDetail, listGrants, readAudit, tokenDetail } from "../admin/query.js";
import { bulkRevoke, previewRevocation, revokeGrantById, revokeTokenById } from "../admin/revoke.js";
import { presentedCredential } from "../auth/credentials.js";
import type { KeyMatcher } from "../auth/secrets.js";
import type { AdminConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { parseInput } from "./reply.js";

export interface AdminRouteDeps {
  readonly ctx: AdminContext;
  readonly admins: KeyMatcher<AdminConfig>;
}

const GrantsQuery = z.strictObject({
  agent: AgentName.optional(),
  scope: ScopeName.optional(),
  root: GrantId.optional(),
  cursor: z
    .string()
    .regex(/^[0-9]{1,20}(:[0-9]{1,20})?$/, "a cursor from a previous page")
    .optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
});

const AuditQuery = z.strictObject({
  after: z
    .string()
    .regex(/^[0-9]{1,20}(-[0-9]{1,20})?$/, "a cursor from a previous page")
    .optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  grantId: GrantId.optional(),
  root: GrantId.optional(),
  agent: AgentName.optional(),
  type: z.enum(AUDIT_EVENT_TYPES).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});

/** The admin API: listing, inspecting and revoking grants and tokens, reading the audit trail. */
export const registerAdminRoutes = (app: FastifyInstance, { ctx, admins }: AdminRouteDeps): void => {
  const requireAdmin = (request: FastifyRequest): Actor => {
    const presented = presentedCredential(request.raw.rawHeaders);
    const admin = presented.kind === "key" ? admins.match(presented.key) : undefined;
    if (!admin) throw new BrokerError("unauthenticated", "this route needs an admin key");
    return { name: admin.name };
  };
  const grantIdParam = (request: FastifyRequest): string =>
    parseInput(z.object({ grantId: GrantId }), request.params).grantId;

  app.get("/v1/grants", async (request) => {
    requireAdmin(request);
    const q = parseInput(GrantsQuery, request.query);
    const filter = {
      ...(q.agent ? { agent: q.agent } : {}),
      ...(q.scope ? { scope: q.scope } : {}),
      ...(q.root ? { rootGrantId: q.root } : {}),
    };
    return listGrants(ctx, filter, q.cursor ?? null, q.limit);
  });

  app.get("/v1/grants/:grantId", async (request) => {
    requireAdmin(request);
    return grantDetail(ctx, grantIdParam(request));
  });

  app.delete("/v1/grants/:grantId", async (request) => {
    const actor = requireAdmin(request);
    return revokeGrantById(ctx, actor, grantIdParam(request), request.id);
  });

  app.delete("/v1/tokens/:tokenId", async (request) => {
    const actor = requireAdmin(request);
    const { tokenId } = parseInput(z.object({ tokenId: TokenId }), request.params);
    return revokeTokenById(ctx, actor, tokenId, request.id);
  });

  app.post("/v1/revocations", async (request) => {
    const actor = requireAdmin(request);
    const { dryRun } = parseInput(
      z.strictObject({ dryRun: z.enum(["true", "false"]).optional() }),
      request.query,
    );
    const selector = parseInput(RevocationSelector, request.body);
    return dryRun === "true"
      ? previewRevocation(ctx, actor, selector)
      : bulkRevoke(ctx, actor, selector, request.id);
  });

  app.get("/v1/tokens/:tokenId", async (request) => {
    requireAdmin(request);
    const { tokenId } = parseInput(z.object({ tokenId: TokenId }), request.params);
    return tokenDetail(ctx, tokenId);
  });

  app.get("/v1/audit", async (request) => {
    requireAdmin(request);
    const q = parseInput(AuditQuery, request.query);
    return readAudit(ctx, {
      limit: q.limit,
      ...(q.after ? { after: q.after } : {}),
      ...(q.since ? { since: Date.parse(q.since) } : {}),
      ...(q.grantId ? { grantId: q.grantId } : {}),
      ...(q.root ? { rootGrantId: q.root } : {}),
      ...(q.agent ? { agent: q.agent } : {}),
      ...(q.type ? { type: q.type } : {}),
    });
  });
};
