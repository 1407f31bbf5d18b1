import { grantTree } from "@perishable/protocol";
import { newGrantId, newRootGrantId, newToken, newTokenId, TokenHasher } from "../../src/auth/secrets.js";
import { Secret } from "../../src/config/secret.js";
import type { GrantRecord, TokenRecord, TokenRef } from "../../src/store/types.js";

export const hasher = new TokenHasher(new Secret("test-secret-test-secret-test-secret-0123"));

export interface Issued {
  readonly grant: GrantRecord;
  readonly record: TokenRecord;
  readonly token: string;
  readonly ref: TokenRef;
}

export interface GrantSpec {
  readonly scopes?: readonly string[];
  readonly ttlMs?: number;
  readonly lifetimeMs?: number;
  readonly maxUses?: number | null;
  readonly maxChildren?: number;
  readonly maxTtlMs?: number;
  readonly agent?: string;
  readonly identity?: { issuer: string; subject: string };
  readonly onBehalfOf?: string;
  /** Nano-dollars and tokens. */
  readonly budget?: { usd?: number; tokens?: number };
  readonly maxConcurrent?: number;
  /** Default: set when it has a budget or maxConcurrent (a child: or when its parent is tracked). */
  readonly tracked?: boolean;
}

/** A root grant with its first token, as the issue use case would build it. */
export const rootGrant = (now: number, spec: GrantSpec = {}): Issued => {
  const id = newRootGrantId();
  const tree = grantTree(id)!;
  return withToken(now, spec, {
    id,
    tree,
    rootId: id,
    parentId: null,
    ancestors: [],
    depth: 0,
  });
};

/** A child of `parent` (same tree, parent's lineage plus the parent). */
export const childGrant = (now: number, parent: GrantRecord, spec: GrantSpec = {}): Issued =>
  withToken(
    now,
    {
      lifetimeMs: parent.notAfter - now,
      ...(parent.tracked ? { tracked: true } : {}),
      ...(parent.onBehalfOf === undefined ? {} : { onBehalfOf: parent.onBehalfOf }),
      ...spec,
    },
    {
      id: newGrantId(parent.tree),
      tree: parent.tree,
      rootId: parent.rootId,
      parentId: parent.id,
      ancestors: [...parent.ancestors, parent.id],
      depth: parent.depth + 1,
    },
  );

const withToken = (
  now: number,
  spec: GrantSpec,
  shape: Pick<GrantRecord, "id" | "tree" | "rootId" | "parentId" | "ancestors" | "depth">,
): Issued => {
  const ttl = spec.ttlMs ?? 60_000;
  const notAfter = now + (spec.lifetimeMs ?? 3_600_000);
  const grant: GrantRecord = {
    ...shape,
    agent: spec.agent ?? `agent-${shape.depth}`,
    task: null,
    scopes: [...(spec.scopes ?? ["llm:complete"])],
    issuer: "test",
    createdAt: now,
    notAfter,
    ttl,
    maxTtl: spec.maxTtlMs ?? 600_000,
    maxUses: spec.maxUses ?? null,
    ...(spec.maxChildren === undefined ? {} : { maxChildren: spec.maxChildren }),
    ...(spec.budget ? { budget: spec.budget } : {}),
    ...(spec.maxConcurrent === undefined ? {} : { maxConcurrent: spec.maxConcurrent }),
    ...((spec.tracked ?? (spec.budget !== undefined || spec.maxConcurrent !== undefined))
      ? { tracked: true }
      : {}),
    metadata: { purpose: "contract" },
    identity: spec.identity ?? null,
    ...(spec.onBehalfOf === undefined ? {} : { onBehalfOf: spec.onBehalfOf }),
  };
  const token = newToken(grant.tree);
  const record: TokenRecord = {
    tokenId: newTokenId(grant.tree),
    hash: hasher.hash(token),
    grantId: grant.id,
    issuedAt: now,
    expiresAt: Math.min(now + ttl, notAfter),
  };
  return { grant, record, token, ref: { tree: grant.tree, hash: record.hash } };
};

/** A fresh token for a refresh call. */
export const nextToken = (tree: string, ttlMs?: number) => {
  const token = newToken(tree);
  return { token, input: { tokenId: newTokenId(tree), hash: hasher.hash(token), ttl: ttlMs } };
};
