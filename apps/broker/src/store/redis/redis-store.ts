import { type AuditEvent, grantTree } from "@perishable/protocol";
import { Redis, type RedisOptions, ReplyError } from "ioredis";
import { RedisKeys } from "../keys.js";
import {
  type AuthorizeDenial,
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type GrantRecord,
  type InspectResult,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type Store,
  StoreUnavailableError,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
} from "../types.js";
import { decodeDenial, grantFields, grantFromFields, pairsToMap } from "./codec.js";
import { AUTHORIZE, CREATE, INSPECT, REFRESH, REVOKE_GRANT } from "./scripts.js";

type Reply = string[];

interface ScriptCommands {
  prsAuthorize(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsCreate(...keysAndArgs: (string | number)[]): Promise<Reply>;
  prsRefresh(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<Reply>;
  prsInspect(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsRevokeGrant(key: string, ...args: (string | number)[]): Promise<number>;
}

type ScriptedRedis = Redis & ScriptCommands;

export interface RedisStoreOptions {
  readonly url: string;
  readonly prefix: string;
  readonly auditMaxLen: number;
  /** Per-command timeout: a hung Redis fails closed instead of hanging requests. */
  readonly commandTimeoutMs?: number;
  /** How long `connect()` waits for Redis before giving up. */
  readonly connectTimeoutMs?: number;
}

/** Errors Redis answers with while it cannot serve (failover, loading, cluster trouble). */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;

export class RedisStore implements Store {
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #auditMaxLen: number;
  readonly #connectTimeoutMs: number;

  constructor(options: RedisStoreOptions) {
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // Fail closed and fast while disconnected: no queue of requests waiting for a Redis
      // that may be gone for minutes; the proxy answers 503 store_unavailable at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 2_000,
      connectTimeout: options.connectTimeoutMs ?? 5_000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
      enableAutoPipelining: true,
    };
    this.#redis = new Redis(options.url, redisOptions) as ScriptedRedis;
    // ioredis emits 'error' on every failed reconnect; the store reports availability through
    // ping() and StoreUnavailableError instead, so these are expected and not thrown.
    this.#redis.on("error", () => {});
    this.#keys = new RedisKeys(options.prefix);
    this.#auditMaxLen = options.auditMaxLen;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.#redis.defineCommand("prsAuthorize", { numberOfKeys: 1, lua: AUTHORIZE });
    this.#redis.defineCommand("prsCreate", { lua: CREATE });
    this.#redis.defineCommand("prsRefresh", { numberOfKeys: 3, lua: REFRESH });
    this.#redis.defineCommand("prsInspect", { numberOfKeys: 1, lua: INSPECT });
    this.#redis.defineCommand("prsRevokeGrant", { numberOfKeys: 1, lua: REVOKE_GRANT });
  }

  /** Connects and waits until Redis answers; rejects with StoreUnavailableError after the timeout. */
  async connect(): Promise<void> {
    const timer = new Promise<never>((_, reject) => {
      const t = setTimeout(
        () => reject(new StoreUnavailableError(`Redis did not answer within ${this.#connectTimeoutMs} ms`)),
        this.#connectTimeoutMs,
      );
      t.unref();
    });
    try {
      await Promise.race([this.#redis.connect(), timer]);
      await Promise.race([this.#redis.ping(), timer]);
    } catch (error) {
      throw error instanceof StoreUnavailableError
        ? error
        : new StoreUnavailableError("cannot connect to Redis", { cause: error });
    }
  }

  async createGrant(
    grant: GrantRecord,
    token: TokenRecord,
    parent?: TokenRef,
    now = Date.now(),
  ): Promise<CreateResult> {
    const k = this.#keys;
    const keys = [
      k.grant(grant.tree, grant.id),
      k.token(grant.tree, token.hash),
      k.tokenId(grant.tree, token.tokenId),
      k.tree(grant.tree),
    ];
    if (parent) keys.push(k.token(parent.tree, parent.hash));
    const args = [
      k.base(grant.tree),
      now,
      grant.id,
      token.tokenId,
      token.hash,
      token.issuedAt,
      token.expiresAt,
      grant.notAfter + RECORD_GRACE_MS,
      token.expiresAt + RECORD_GRACE_MS,
      grant.parentId ?? "",
      ...grantFields(grant),
    ];
    const reply = await this.#call(() => this.#redis.prsCreate(keys.length, ...keys, ...args));
    return reply[0] === "ok" ? { ok: true } : decodeDenial<TokenDenial>(reply);
  }

  async authorize(ref: TokenRef, now: number, candidates: readonly Candidate[]): Promise<AuthorizeResult> {
    const args: (string | number)[] = [this.#keys.base(ref.tree), now, candidates.length];
    for (const c of candidates) args.push(c.scope, c.pass ? "1" : "0", c.limit, c.windowMs);
    const reply = await this.#call(() =>
      this.#redis.prsAuthorize(this.#keys.token(ref.tree, ref.hash), ...args),
    );
    if (reply[0] !== "ok") return decodeDenial<AuthorizeDenial>(reply);
    return {
      ok: true,
      scope: reply[7]!,
      subject: {
        grantId: reply[1]!,
        tokenId: reply[2]!,
        rootGrantId: reply[3]!,
        parentGrantId: reply[4] || null,
        agent: reply[5]!,
        issuedAt: Number(reply[6]),
      },
    };
  }

  async inspect(ref: TokenRef, now: number): Promise<InspectResult> {
    const reply = await this.#call(() =>
      this.#redis.prsInspect(this.#keys.token(ref.tree, ref.hash), this.#keys.base(ref.tree), now),
    );
    if (reply[0] !== "ok") return decodeDenial<TokenDenial>(reply);
    const fields = pairsToMap(reply, 5);
    const grant = grantFromFields(reply[2]!, ref.tree, fields);
    return { ok: true, token: tokenFromReply(reply, ref.hash), grant, used: Number(fields.get("used") ?? 0) };
  }

  async refresh(ref: TokenRef, now: number, next: RefreshInput): Promise<RefreshResult> {
    const k = this.#keys;
    const reply = await this.#call(() =>
      this.#redis.prsRefresh(
        k.token(ref.tree, ref.hash),
        k.token(ref.tree, next.hash),
        k.tokenId(ref.tree, next.tokenId),
        k.base(ref.tree),
        now,
        next.tokenId,
        next.hash,
        next.ttl ?? 0,
        RECORD_GRACE_MS,
      ),
    );
    if (reply[0] !== "ok") return decodeDenial<TokenDenial | "ttl_exceeded">(reply);
    const grant = grantFromFields(reply[2]!, ref.tree, pairsToMap(reply, 5));
    return { ok: true, token: tokenFromReply(reply, next.hash), grant };
  }

  async revokeGrant(grantId: string, now: number): Promise<number> {
    const tree = grantTree(grantId);
    if (!tree) return 0;
    return this.#call(() =>
      this.#redis.prsRevokeGrant(this.#keys.tree(tree), this.#keys.base(tree), grantId, now),
    );
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const key = this.#keys.audit();
    const pipeline = this.#redis.pipeline();
    for (const event of events)
      pipeline.xadd(key, "MAXLEN", "~", this.#auditMaxLen, "*", "e", JSON.stringify(event));
    const results = await this.#call(() => pipeline.exec());
    const failed = results?.find(([error]) => error);
    if (failed?.[0]) throw toStoreError(failed[0]);
  }

  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    if (this.#redis.status === "end") return;
    try {
      await this.#redis.quit();
    } catch {
      this.#redis.disconnect();
    }
  }

  /** For tests and tools that need to look at what is stored. */
  get client(): Redis {
    return this.#redis;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toStoreError(error);
    }
  }
}

/** The token part of an inspect or refresh reply: {'ok', tokenId, grantId, issuedAt, expiresAt, …}. */
const tokenFromReply = (reply: Reply, hash: string): TokenRecord => ({
  tokenId: reply[1]!,
  hash,
  grantId: reply[2]!,
  issuedAt: Number(reply[3]),
  expiresAt: Number(reply[4]),
});

/**
 * Anything that stops Redis from answering is StoreUnavailableError (→ 503, fail closed). A
 * ReplyError that is not about availability is a bug in a script: it propagates as is (→ 500).
 */
const toStoreError = (error: unknown): Error => {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof ReplyError && !TRANSIENT_REPLY.test((error as Error).message)) return error as Error;
  return new StoreUnavailableError("store unavailable", { cause: error });
};
