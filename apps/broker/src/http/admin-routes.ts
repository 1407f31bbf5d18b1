import { ADMIN_ROUTES, type AdminAnswer, type AdminRouteName } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
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

type Input<N extends AdminRouteName> = {
  readonly params: z.infer<(typeof ADMIN_ROUTES)[N]["params"]>;
  readonly query: z.infer<(typeof ADMIN_ROUTES)[N]["query"]>;
  readonly body: (typeof ADMIN_ROUTES)[N] extends { readonly body: infer B extends z.ZodType }
    ? z.infer<B>
    : undefined;
};
type Handlers = {
  readonly [N in AdminRouteName]: (
    input: Input<N>,
    actor: Actor,
    requestId: string,
  ) => Promise<AdminAnswer<N>>;
};

/** The admin API: listing, inspecting and revoking grants and tokens, reading the audit trail. */
export const registerAdminRoutes = (app: FastifyInstance, { ctx, admins }: AdminRouteDeps): void => {
  const requireAdmin = (request: FastifyRequest): Actor => {
    const presented = presentedCredential(request.raw.rawHeaders);
    const admin = presented.kind === "key" ? admins.match(presented.key) : undefined;
    if (!admin) throw new BrokerError("unauthenticated", "this route needs an admin key");
    return { name: admin.name };
  };
  // One handler per route of ADMIN_ROUTES (the compiler insists), each given validated input.
  const handlers: Handlers = {
    listGrants: ({ query: q }) => {
      const filter = {
        ...(q.agent ? { agent: q.agent } : {}),
        ...(q.scope ? { scope: q.scope } : {}),
        ...(q.root ? { rootGrantId: q.root } : {}),
      };
      return listGrants(ctx, filter, q.cursor ?? null, q.limit);
    },
    grant: ({ params }) => grantDetail(ctx, params.grantId),
    revokeGrant: ({ params }, actor, requestId) => revokeGrantById(ctx, actor, params.grantId, requestId),
    token: ({ params }) => tokenDetail(ctx, params.tokenId),
    revokeToken: ({ params }, actor, requestId) => revokeTokenById(ctx, actor, params.tokenId, requestId),
    revoke: ({ query, body }, actor, requestId) =>
      query.dryRun === "true" ? previewRevocation(ctx, actor, body) : bulkRevoke(ctx, actor, body, requestId),
    audit: ({ query: q }) =>
      readAudit(ctx, {
        limit: q.limit,
        ...(q.after ? { after: q.after } : {}),
        ...(q.since ? { since: Date.parse(q.since) } : {}),
        ...(q.grantId ? { grantId: q.grantId } : {}),
        ...(q.root ? { rootGrantId: q.root } : {}),
        ...(q.agent ? { agent: q.agent } : {}),
        ...(q.onBehalfOf ? { onBehalfOf: q.onBehalfOf } : {}),
        ...(q.type ? { type: q.type } : {}),
      }),
  };
  for (const name of Object.keys(ADMIN_ROUTES) as AdminRouteName[]) {
    const route: {
      readonly method: string;
      readonly path: string;
      readonly params: z.ZodType;
      readonly query: z.ZodType;
      readonly body?: z.ZodType;
    } = ADMIN_ROUTES[name];
    const handle = handlers[name] as (input: unknown, actor: Actor, requestId: string) => Promise<unknown>;
    app.route({
      method: route.method,
      url: route.path,
      handler: async (request) => {
        // The key before anything the caller sent is looked at.
        const actor = requireAdmin(request);
        const input = {
          params: parseInput(route.params, request.params),
          query: parseInput(route.query, request.query),
          body: route.body ? parseInput(route.body, request.body) : undefined,
        };
        return handle(input, actor, request.id);
      },
    });
  }
};
