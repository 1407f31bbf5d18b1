import { z } from "zod";
import {
  AdminTokenView,
  AuditPage,
  GrantDetail,
  GrantList,
  RevocationResult,
  RevocationSelector,
} from "./admin.js";
import { AUDIT_EVENT_TYPES } from "./audit.js";
import { AgentName, GrantId, OnBehalfOf, type Schema, ScopeName, TokenId } from "./schemas.js";

/** `GET /v1/grants` query. */
export const GrantsQuery = z.strictObject({
  agent: AgentName.optional(),
  scope: ScopeName.optional(),
  root: GrantId.optional(),
  cursor: z
    .string()
    .regex(/^[0-9]{1,20}(:[0-9]{1,20})?$/, "a cursor from a previous page")
    .optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
});

/** `GET /v1/audit` query: filters AND together; `after` is the `next` of a previous page. */
export const AuditQuery = z.strictObject({
  after: z
    .string()
    .regex(/^[0-9]{1,20}(-[0-9]{1,20})?$/, "a cursor from a previous page")
    .optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  grantId: GrantId.optional(),
  root: GrantId.optional(),
  agent: AgentName.optional(),
  /** Events of lineages acting for this person or system. */
  onBehalfOf: OnBehalfOf.optional(),
  type: z.enum(AUDIT_EVENT_TYPES).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});

/** `POST /v1/revocations` query: `dryRun=true` counts without revoking. */
export const RevocationQuery = z.strictObject({ dryRun: z.enum(["true", "false"]).optional() });

/** Routes that take no query ignore one, as they always have. */
const NoQuery = z.object({});
const GrantParams = z.strictObject({ grantId: GrantId });
const TokenParams = z.strictObject({ tokenId: TokenId });
const NoParams = z.strictObject({});

interface AdminRoute {
  readonly method: "GET" | "POST" | "DELETE";
  /** With `:name` placeholders for the params. */
  readonly path: string;
  readonly params: Schema<Record<string, string>>;
  readonly query: z.ZodType;
  readonly body?: z.ZodType;
  readonly answer: Schema<unknown>;
}

/**
 * The admin API, once: each route's method, path, the schemas of its params, query and body, and
 * of its answer. The broker validates what it is sent with them; the CLI and the console call the
 * API through `adminRequest` and parse every answer with them. A route added here is a route
 * both sides know.
 */
export const ADMIN_ROUTES = {
  listGrants: { method: "GET", path: "/v1/grants", params: NoParams, query: GrantsQuery, answer: GrantList },
  grant: {
    method: "GET",
    path: "/v1/grants/:grantId",
    params: GrantParams,
    query: NoQuery,
    answer: GrantDetail,
  },
  revokeGrant: {
    method: "DELETE",
    path: "/v1/grants/:grantId",
    params: GrantParams,
    query: NoQuery,
    answer: RevocationResult,
  },
  token: {
    method: "GET",
    path: "/v1/tokens/:tokenId",
    params: TokenParams,
    query: NoQuery,
    answer: AdminTokenView,
  },
  revokeToken: {
    method: "DELETE",
    path: "/v1/tokens/:tokenId",
    params: TokenParams,
    query: NoQuery,
    answer: RevocationResult,
  },
  revoke: {
    method: "POST",
    path: "/v1/revocations",
    params: NoParams,
    query: RevocationQuery,
    body: RevocationSelector,
    answer: RevocationResult,
  },
  audit: { method: "GET", path: "/v1/audit", params: NoParams, query: AuditQuery, answer: AuditPage },
} as const satisfies Record<string, AdminRoute>;

export type AdminRouteName = keyof typeof ADMIN_ROUTES;
type RouteOf<N extends AdminRouteName> = (typeof ADMIN_ROUTES)[N];

/** What a caller passes for a route: its params, its query (as the URL carries it), its body. */
// biome-ignore lint/complexity/noBannedTypes: `{}` extends it exactly when the route has no params
export type AdminInput<N extends AdminRouteName> = ({} extends z.input<RouteOf<N>["params"]>
  ? { readonly params?: undefined }
  : { readonly params: z.input<RouteOf<N>["params"]> }) & {
  readonly query?: { readonly [K in keyof z.input<RouteOf<N>["query"]>]?: string | number | undefined };
} & (RouteOf<N> extends { readonly body: infer B extends z.ZodType }
    ? { readonly body: z.input<B> }
    : { readonly body?: undefined });

/** What a route answers, parsed. */
export type AdminAnswer<N extends AdminRouteName> = z.infer<RouteOf<N>["answer"]>;

/** The request for a route: method, the path with its params filled in and its query, the body. */
export const adminRequest = <N extends AdminRouteName>(
  name: N,
  input: AdminInput<N>,
): { method: RouteOf<N>["method"]; path: string; body: unknown } => {
  const route: AdminRoute = ADMIN_ROUTES[name];
  const params = (input.params ?? {}) as Record<string, string>;
  const path = route.path.replace(/:([A-Za-z]+)/g, (_, key: string) => encodeURIComponent(params[key] ?? ""));
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(input.query ?? {}))
    if (value !== undefined && value !== "") query.set(key, String(value));
  const search = query.toString();
  return {
    method: route.method as RouteOf<N>["method"],
    path: search ? `${path}?${search}` : path,
    body: input.body,
  };
};

/**
 * A validating admin client over a transport that sends a request and resolves to the answer's
 * JSON (throwing its own errors for refusals): each answer is parsed with its route's schema,
 * never cast. `onBadAnswer` says what a transport throws for an answer that does not parse.
 */
export const adminClient = (
  send: (request: { method: string; path: string; body: unknown }) => Promise<unknown>,
  onBadAnswer: (request: { method: string; path: string }) => Error,
) => {
  return async <N extends AdminRouteName>(name: N, input: AdminInput<N>): Promise<AdminAnswer<N>> => {
    const request = adminRequest(name, input);
    const parsed = ADMIN_ROUTES[name].answer.safeParse(await send(request));
    if (!parsed.success) throw onBadAnswer({ method: request.method, path: request.path.split("?", 1)[0]! });
    return parsed.data as AdminAnswer<N>;
  };
};
export type AdminClient = ReturnType<typeof adminClient>;
