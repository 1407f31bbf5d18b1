import { z } from "zod";

export const AUDIT_EVENT_TYPES = [
  "issued",
  "refreshed",
  "delegated",
  "used",
  "denied",
  "expired",
  "revoked",
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/**
 * One line of the audit trail. The fields every event carries come first; the rest depend on
 * the type. No field ever holds a token, a key or an upstream secret: tokens appear only as
 * their public `tokenId`.
 */
export const AuditEvent = z.object({
  at: z.string(),
  type: z.enum(AUDIT_EVENT_TYPES),
  requestId: z.string().nullable(),
  grantId: z.string().nullable(),
  tokenId: z.string().nullable(),
  rootGrantId: z.string().nullable(),
  parentGrantId: z.string().nullable(),
  agent: z.string().nullable(),
  /** issued / refreshed / delegated */
  issuer: z.string().optional(),
  /** issued with a workload identity: its OIDC issuer and subject. */
  identity: z.object({ issuer: z.string(), subject: z.string() }).optional(),
  scopes: z.array(z.string()).optional(),
  expiresAt: z.string().optional(),
  childGrantId: z.string().optional(),
  /** used / denied */
  upstream: z.string().optional(),
  method: z.string().optional(),
  path: z.string().optional(),
  scope: z.string().optional(),
  status: z.int().optional(),
  upstreamMs: z.number().optional(),
  totalMs: z.number().optional(),
  /** Seconds since the token was issued, at the moment of use. */
  credentialAge: z.number().optional(),
  model: z.string().optional(),
  usage: z.record(z.string(), z.number()).optional(),
  /** used: the scope's output ceiling was filled in because the body stated no limit. */
  ceiling: z.object({ field: z.string(), value: z.int() }).optional(),
  code: z.string().optional(),
  rule: z.string().optional(),
  /** expired: `grant` (it reached notAfter) or `token` (its holder stopped refreshing). */
  reason: z.string().optional(),
  /** revoked */
  by: z.string().optional(),
  selector: z.record(z.string(), z.unknown()).optional(),
  count: z.int().optional(),
});
export type AuditEvent = z.infer<typeof AuditEvent>;
