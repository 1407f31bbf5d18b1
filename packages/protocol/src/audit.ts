import { z } from "zod";
import { ERROR_CODES } from "./errors.js";

export const AUDIT_EVENT_TYPES = [
  "issued",
  "refreshed",
  "delegated",
  "used",
  "denied",
  "expired",
  "revoked",
  "upstream_key_rotated",
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/** Who an event is about: the fields every event carries (null where nobody is known). */
const Common = {
  at: z.string(),
  requestId: z.string().nullable(),
  grantId: z.string().nullable(),
  tokenId: z.string().nullable(),
  rootGrantId: z.string().nullable(),
  parentGrantId: z.string().nullable(),
  agent: z.string().nullable(),
  /** Who the lineage acts for, when its root says (absent otherwise). */
  onBehalfOf: z.string().optional(),
};

/** How a forwarded request ended when it did not end with the upstream's whole answer. */
/** `cut`: the broker ended it (its authority was revoked or reached its end while it was open). */
export const USED_FAILURES = ["upstream_timeout", "upstream_error", "client_closed", "cut"] as const;

const Issued = z.object({
  ...Common,
  type: z.literal("issued"),
  issuer: z.string(),
  scopes: z.array(z.string()),
  expiresAt: z.string(),
  /** Issued with a workload identity: its OIDC issuer and subject. */
  identity: z.object({ issuer: z.string(), subject: z.string() }).optional(),
  /** DPoP-bound: the key's JWK thumbprint. */
  jkt: z.string().optional(),
  /** Token exchange: the actor that asked (its workload identity). */
  actor: z.object({ issuer: z.string(), subject: z.string() }).optional(),
});

const Refreshed = z.object({ ...Common, type: z.literal("refreshed"), expiresAt: z.string() });

const Delegated = z.object({
  ...Common,
  type: z.literal("delegated"),
  issuer: z.string(),
  scopes: z.array(z.string()),
  expiresAt: z.string(),
  /** DPoP-bound: the key's JWK thumbprint. */
  jkt: z.string().optional(),
  /** Token exchange: the actor that asked (its workload identity). */
  actor: z.object({ issuer: z.string(), subject: z.string() }).optional(),
});

/** An MCP message: its method, and for tools/call the tool (the first message of a batch). */
const McpDetail = z.object({ method: z.string(), tool: z.string().optional() });

const Used = z.object({
  ...Common,
  type: z.literal("used"),
  mcp: McpDetail.optional(),
  /** A WebSocket, at its end: messages and bytes each way (in: from the client), its close code. */
  websocket: z
    .object({
      messagesIn: z.int(),
      messagesOut: z.int(),
      bytesIn: z.int(),
      bytesOut: z.int(),
      closeCode: z.int(),
    })
    .optional(),
  upstream: z.string(),
  method: z.string(),
  path: z.string(),
  scope: z.string(),
  status: z.int(),
  upstreamMs: z.number(),
  totalMs: z.number(),
  /** Seconds since the token was issued, at the moment of use. */
  credentialAge: z.number().optional(),
  model: z.string().optional(),
  usage: z.record(z.string(), z.number()).optional(),
  /** The scope's output ceiling was filled in because the body stated no limit. */
  ceiling: z.object({ field: z.string(), value: z.int() }).optional(),
  code: z.enum(USED_FAILURES).optional(),
  /**
   * What the request cost: at its usage and price (`usage`), its whole reservation when the answer
   * gave no usage or did not finish (`reservation`), or nothing (`refused`: the upstream answered
   * 4xx and produced nothing). Only for priced requests.
   */
  cost: z
    .object({
      usd: z.number().nonnegative(),
      tokens: z.int().nonnegative(),
      basis: z.enum(["usage", "reservation", "refused"]),
      price: z.string().optional(),
    })
    .optional(),
});

const Denied = z.object({
  ...Common,
  type: z.literal("denied"),
  code: z.enum(ERROR_CODES),
  mcp: McpDetail.optional(),
  /** What refused: the revoked ancestor, the scope and constraint, the rule, or the message. */
  rule: z.string(),
  upstream: z.string().optional(),
  method: z.string().optional(),
  path: z.string().optional(),
});

const Expired = z.object({
  ...Common,
  type: z.literal("expired"),
  /** `grant`: it reached notAfter; `token`: its holder stopped refreshing. */
  reason: z.enum(["grant", "token"]),
});

const Revoked = z.object({
  ...Common,
  type: z.literal("revoked"),
  by: z.string(),
  count: z.int(),
  /** Live connections (in-flight answers, streams, WebSockets) cut on every node. */
  connections: z.int().optional(),
  /** A bulk revocation: what it selected, and the rule that keeps selecting it. */
  selector: z.record(z.string(), z.unknown()).optional(),
  rule: z.string().optional(),
});

/**
 * One line of the audit trail, by type: each type carries the fields every event does, then its
 * own. No field ever holds a token, a key or an upstream secret: tokens appear only as their
 * public `tokenId`.
 */
/** An upstream's key was read again from its file and changed (never the key itself). */
const UpstreamKeyRotated = z.object({
  ...Common,
  type: z.literal("upstream_key_rotated"),
  upstream: z.string(),
});

export const AuditEvent = z.discriminatedUnion("type", [
  Issued,
  Refreshed,
  Delegated,
  Used,
  Denied,
  Expired,
  Revoked,
  UpstreamKeyRotated,
]);
export type AuditEvent = z.infer<typeof AuditEvent>;
/** The event of one type. */
export type AuditEventOf<T extends AuditEventType> = Extract<AuditEvent, { type: T }>;
/** The events of one type, typed as such. */
export const eventsOf = <T extends AuditEventType, E extends AuditEvent>(
  events: readonly E[],
  type: T,
): Extract<E, { type: T }>[] => events.filter((e): e is Extract<E, { type: T }> => e.type === type);
/** What an event of a type carries beyond who it is about. */
export type AuditDetails<T extends AuditEventType> = Omit<AuditEventOf<T>, keyof typeof Common | "type">;
