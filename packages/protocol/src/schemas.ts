import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "./errors.js";
import { GRANT_ID_RE, TOKEN_ID_RE, TOKEN_RE } from "./ids.js";

/** Scope names as written in the config: `llm:complete`, `storage.read`, `files/rw`. */
export const SCOPE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/;
/** Agent names: what shows up in the audit trail and the lineage tree. */
export const AGENT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$/;

export const ScopeName = z
  .string()
  .regex(SCOPE_NAME_RE, "a scope name: letters, digits and . _ : / - (max 64)");
export const AgentName = z
  .string()
  .regex(AGENT_NAME_RE, "an agent name: letters, digits and . _ : @ / + - (max 128)");
export const GrantId = z.string().regex(GRANT_ID_RE, "a grant id (gr_…)");
export const TokenId = z.string().regex(TOKEN_ID_RE, "a token id (tk_…)");
export const Token = z.string().regex(TOKEN_RE, "a perishable token (prs_…)");
const Seconds = z.int("a whole number of seconds").positive("a positive number of seconds");
const IsoTime = z.iso.datetime({ offset: false });

export const MAX_METADATA_ENTRIES = 32;
/** The largest budget a grant may hold: far above any real one, low enough to count exactly. */
export const MAX_BUDGET_USD = 1_000_000;
export const MAX_BUDGET_TOKENS = 1_000_000_000_000;

/** A spending limit: US dollars, tokens (input + output), or both. */
export const Budget = z
  .strictObject({
    usd: z.number().min(0).max(MAX_BUDGET_USD).optional(),
    tokens: z.int().min(0).max(MAX_BUDGET_TOKENS).optional(),
  })
  .refine((b) => b.usd !== undefined || b.tokens !== undefined, "name usd, tokens or both");
export type Budget = z.infer<typeof Budget>;

/** Limit, spent and reserved (held for requests in flight) of one unit; limit null when none is set. */
export const BudgetUse = z.object({
  limit: z.number().nonnegative().nullable(),
  spent: z.number().nonnegative(),
  reserved: z.number().nonnegative(),
});
export type BudgetUse = z.infer<typeof BudgetUse>;

/** What a grant has spent and holds: dollars, tokens, requests in flight. Its descendants' count too. */
export const Spend = z.object({
  usd: BudgetUse,
  tokens: BudgetUse,
  maxConcurrent: z.int().positive().nullable(),
  inFlight: z.int().nonnegative(),
});
export type Spend = z.infer<typeof Spend>;

/** Who a lineage acts for: a person or system as the issuer names it (`user:alice`). */
export const OnBehalfOf = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");

/** A JWK SHA-256 thumbprint (RFC 7638), base64url: what a DPoP-bound grant is bound to (`cnf.jkt`). */
export const Jkt = z
  .string()
  .regex(/^[A-Za-z0-9_-]{43}$/, "a JWK SHA-256 thumbprint (43 base64url characters)");

/** RFC 7800's confirmation: the key a bound grant's tokens must be used with. */
export const Confirmation = z.object({ jkt: Jkt });

/** `POST /v1/tokens`. Unknown fields are refused so that a typo never silently widens a grant. */
export const IssueTokenRequest = z.strictObject({
  scopes: z.array(ScopeName).min(1, "at least one scope").max(64),
  ttl: Seconds.optional(),
  agent: AgentName.optional(),
  task: z.string().min(1).max(256).optional(),
  lifetime: Seconds.optional(),
  maxUses: z.int().positive().max(1_000_000_000).optional(),
  /** What the grant (with everything it delegates) may spend; a child's is within its parent's remaining. */
  budget: Budget.optional(),
  /** Requests in flight at once, the grant's and its descendants'; an open stream counts until it closes. */
  maxConcurrent: z.int().positive().max(100_000).optional(),
  /**
   * Delegation: binds the child to this key (a sub-agent's) while the parent proves its own
   * (RFC 9449's `dpop_jkt`). Without it a child is bound by the DPoP proof on this request, if any.
   */
  dpopJkt: Jkt.optional(),
  /** Root grants: who the lineage acts for (children inherit it; a child's request may only repeat it). */
  onBehalfOf: OnBehalfOf.optional(),
  metadata: z
    .record(z.string().min(1).max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= MAX_METADATA_ENTRIES, `at most ${MAX_METADATA_ENTRIES} entries`)
    .optional(),
});
export type IssueTokenRequest = z.infer<typeof IssueTokenRequest>;

/** `POST /v1/tokens/refresh`: the body is optional; `ttl` defaults to the grant's own. */
export const RefreshTokenRequest = z.strictObject({ ttl: Seconds.optional() });
export type RefreshTokenRequest = z.infer<typeof RefreshTokenRequest>;

/** The public view of a grant: safe to show, log and return to admins. */
export const GrantView = z.object({
  grantId: GrantId,
  parentGrantId: GrantId.nullable(),
  rootGrantId: GrantId,
  agent: z.string(),
  task: z.string().nullable(),
  scopes: z.array(z.string()),
  depth: z.int().nonnegative(),
  issuer: z.string(),
  createdAt: IsoTime,
  notAfter: IsoTime,
  maxUses: z.int().positive().nullable(),
  /** The grant's own budget, or null: it then draws on its ancestors' (if they have one). */
  budget: z.object({ usd: z.number().optional(), tokens: z.int().optional() }).nullable(),
  maxConcurrent: z.int().positive().nullable(),
  metadata: z.record(z.string(), z.string()),
  /** The workload identity (OIDC issuer and subject) the lineage's root was granted to, if any. */
  identity: z.object({ issuer: z.string(), subject: z.string() }).nullable(),
  /** DPoP binding: every use of the grant's tokens needs a proof by this key. Absent: a bearer grant. */
  cnf: Confirmation.optional(),
  /** Who the lineage acts for, when its root says. */
  onBehalfOf: z.string().optional(),
  /** Token exchange (RFC 8693): the workload that asked for this grant (its actor_token's issuer and subject). */
  actor: z.object({ issuer: z.string(), subject: z.string() }).optional(),
});
export type GrantView = z.infer<typeof GrantView>;

/** 201 answer of `POST /v1/tokens` and `POST /v1/tokens/refresh`. */
export const TokenResponse = z.object({
  token: Token,
  tokenId: TokenId,
  grantId: GrantId,
  parentGrantId: GrantId.nullable(),
  rootGrantId: GrantId,
  agent: z.string(),
  task: z.string().nullable(),
  scopes: z.array(z.string()),
  depth: z.int().nonnegative(),
  issuedAt: IsoTime,
  expiresAt: IsoTime,
  notAfter: IsoTime,
  /** The grant's own budget and cap on requests in flight (absent: none of its own). */
  budget: z.object({ usd: z.number().optional(), tokens: z.int().optional() }).optional(),
  maxConcurrent: z.int().positive().optional(),
  /** DPoP binding (absent: a bearer token). */
  cnf: Confirmation.optional(),
});
export type TokenResponse = z.infer<typeof TokenResponse>;

/** `GET /v1/tokens/self`. */
export const SelfResponse = z.object({
  tokenId: TokenId,
  issuedAt: IsoTime,
  expiresAt: IsoTime,
  /** Whole seconds until the token expires. */
  expiresIn: z.int().nonnegative(),
  grant: GrantView,
  /** Ancestor grant ids, root first; empty for a root grant. */
  lineage: z.array(GrantId),
  /** Proxied calls the grant may still make, or null without `maxUses`. */
  usesLeft: z.int().nonnegative().nullable(),
  /**
   * Spend of the grant and of each ancestor that tracks it (root first, the grant last), or empty
   * when nothing in the lineage has a budget or maxConcurrent.
   */
  spend: z.array(Spend.extend({ grantId: GrantId })),
  /** What the lineage still lets this grant spend: the least left over the grant and its ancestors. */
  budgetLeft: z.object({
    usd: z.number().nonnegative().nullable(),
    tokens: z.number().nonnegative().nullable(),
  }),
});
export type SelfResponse = z.infer<typeof SelfResponse>;

/** `DELETE /v1/tokens/self`, `DELETE /v1/grants/:id`, `POST /v1/revocations`. */
export const RevokeResponse = z.object({
  revoked: z.int().nonnegative(),
  /** Live connections (streams, WebSockets) of the revoked grants cut on every broker node. */
  connections: z.int().nonnegative().optional(),
});
export type RevokeResponse = z.infer<typeof RevokeResponse>;

export const ErrorEnvelopeSchema = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES),
    message: z.string(),
    requestId: z.string(),
  }),
});

/** A schema of the wire API, for clients that parse answers with it (the CLI, the console). */
export type Schema<T> = z.ZodType<T>;

/**
 * The one decoder of a refusal, for every client (SDK transport and session, CLI, console): the
 * broker's error when the body is its envelope, else undefined (a proxy or load balancer in front
 * of the broker answered, or the body is not JSON).
 */
export const readError = (
  json: unknown,
): { readonly code: ErrorCode; readonly message: string; readonly requestId: string } | undefined => {
  const envelope = ErrorEnvelopeSchema.safeParse(json);
  return envelope.success ? envelope.data.error : undefined;
};
