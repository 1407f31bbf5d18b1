import { z } from "zod";
import { AuditEvent } from "./audit.js";
import { AgentName, GrantId, GrantView, OnBehalfOf, ScopeName, Spend } from "./schemas.js";

const IsoTime = z.iso.datetime({ offset: true });

/**
 * `POST /v1/revocations`: which grants to revoke. Fields AND together; at least one is needed
 * (`all: true` to mean everything). A selected grant is revoked with its whole subtree.
 * `issuedAfter` / `issuedBefore` compare with the grant's creation time.
 */
export const RevocationSelector = z
  .strictObject({
    agent: AgentName.optional(),
    scope: ScopeName.optional(),
    rootGrantId: GrantId.optional(),
    /** Every lineage acting for this person or system (`user:alice`). */
    onBehalfOf: OnBehalfOf.optional(),
    issuedAfter: IsoTime.optional(),
    issuedBefore: IsoTime.optional(),
    all: z.literal(true).optional(),
  })
  .refine(
    (s) => Object.values(s).some((v) => v !== undefined),
    "name at least one of agent, scope, rootGrantId, onBehalfOf, issuedAfter, issuedBefore, all",
  )
  .refine(
    (s) => !(s.issuedAfter && s.issuedBefore) || Date.parse(s.issuedAfter) < Date.parse(s.issuedBefore),
    "issuedAfter must be before issuedBefore",
  );
export type RevocationSelector = z.infer<typeof RevocationSelector>;

/** Answer of every revocation: how many grants (with their subtrees) and tokens it ended. */
export const RevocationResult = z.object({
  revoked: z.int().nonnegative(),
  tokens: z.int().nonnegative().optional(),
  /** For a bulk revocation: the rule that keeps denying what matches until nothing can be alive. */
  ruleId: z.string().optional(),
  /**
   * Live connections (in-flight answers, streams, WebSockets) cut on every broker node before the
   * call answered; with `dryRun`, how many are open now that the revocation would cut.
   */
  connections: z.int().nonnegative().optional(),
  /** `POST /v1/revocations?dryRun=true`: nothing was revoked; `revoked` is how many would be. */
  dryRun: z.boolean().optional(),
});
export type RevocationResult = z.infer<typeof RevocationResult>;

export const GRANT_STATUSES = ["live", "revoked", "expired"] as const;

/** A grant as admins see it: the public view plus its state. */
export const AdminGrantView = GrantView.extend({
  status: z.enum(GRANT_STATUSES),
  revokedAt: IsoTime.nullable(),
  /** Proxied calls made under this grant and its descendants, when it has maxUses. */
  usesSpent: z.int().nonnegative().nullable(),
  /** The expiry of the grant's newest token. */
  tokenExpiresAt: IsoTime.nullable(),
  /** Spent, reserved and in flight, when the lineage has a budget or maxConcurrent; else null. */
  spend: Spend.nullable(),
});
export type AdminGrantView = z.infer<typeof AdminGrantView>;

/** `GET /v1/tokens/:tokenId` (admin): which grant a token belongs to, and its state. Never the token. */
export const AdminTokenView = z.object({
  tokenId: z.string(),
  grantId: z.string(),
  issuedAt: IsoTime,
  expiresAt: IsoTime,
  status: z.enum(["live", "revoked", "expired"]),
});
export type AdminTokenView = z.infer<typeof AdminTokenView>;

/** `GET /v1/grants`. */
export const GrantList = z.object({ grants: z.array(AdminGrantView), next: z.string().nullable() });
export type GrantList = z.infer<typeof GrantList>;

/** `GET /v1/grants/:id`: the grant, its ancestors (root first) and its subtree (parents before children). */
/** A connection open through the broker under a grant, as the node holding it reports it. */
export const LiveConnection = z.object({
  node: z.string(),
  kind: z.enum(["http", "websocket"]),
  grantId: z.string(),
  tokenId: z.string(),
  upstream: z.string(),
  path: z.string(),
  openedAt: IsoTime,
});
export type LiveConnection = z.infer<typeof LiveConnection>;

/** The live connections of a grant and its subtree on every node; `missing`: nodes that did not answer. */
export const LiveConnections = z.object({
  connections: z.array(LiveConnection),
  nodes: z.int().nonnegative(),
  missing: z.int().nonnegative(),
});
export type LiveConnections = z.infer<typeof LiveConnections>;

export const GrantDetail = z.object({
  grant: AdminGrantView,
  ancestors: z.array(AdminGrantView),
  subtree: z.array(AdminGrantView),
  /** What is open under the grant and its subtree now (brokers before wave 2 leave it out). */
  live: LiveConnections.optional(),
});
export type GrantDetail = z.infer<typeof GrantDetail>;

/** `GET /v1/audit`: events oldest first; `next` is the cursor to pass as `after` for newer ones. */
export const AuditPage = z.object({
  events: z.array(z.intersection(AuditEvent, z.object({ id: z.string() }))),
  next: z.string().nullable(),
});
export type AuditPage = z.infer<typeof AuditPage>;
