import { DEFAULTS } from "../../config/defaults.js";
import type { RevocationRule } from "../../policy/revocation.js";
import { RedisKeys } from "../keys.js";
import { defaultLease } from "../lease.js";
import {
  type AuditLine,
  type AuditQuery,
  type AuditRead,
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type ExpiredGrant,
  type Flight,
  type GrantFilter,
  type GrantLineage,
  type GrantRecord,
  type GrantState,
  type InspectResult,
  type Lease,
  type LiveInfo,
  type LiveQuery,
  type NodeReport,
  type NodeWork,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type Revoked,
  type RevokeTokenResult,
  type Settlement,
  type SpendState,
  type Store,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
  type TokenState,
} from "../types.js";
import { AuditStream } from "./audit-stream.js";
import type { RedisConnection, RedisStoreOptions } from "./client.js";
import { type Client, call, connectWithin, openClients, type ScriptedRedis } from "./client.js";
import {
  decodeDenial,
  grantFields,
  grantFromFields,
  grantHash,
  grantStateFromFields,
  pairsToMap,
  tokenFromReply,
} from "./codec.js";
import { DurableWrites } from "./durable.js";
import { ExpiryIndex } from "./expiry-index.js";
import { renewFlights, settleFlights } from "./flights.js";
import { GrantReads } from "./grant-reads.js";
import { HotPath } from "./hot-path.js";
import { NodeBus, newNodeId } from "./node-bus.js";
import { Revocations } from "./revocations.js";
import { RuleCache } from "./rule-cache.js";
import { after, field, TOKEN_AND_GRANT } from "./schema.js";

export type { RedisConnection, RedisStoreOptions } from "./client.js";

/**
 * The Store on Redis. This class is the token hot path (issue, authorize, inspect, refresh) and
 * revocation, each one script call on the lineage's slot; the rest has a module of its own:
 * connections and failure mapping (`client.ts`), the rules cache and its pub/sub
 * (`rule-cache.ts`), admin reads (`grant-reads.ts`), the expiry index (`expiry-index.ts`), the
 * audit stream (`audit-stream.ts`) and the one SCAN walk (`scan.ts`).
 */
export class RedisStore implements Store {
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Client;
  readonly #keys: RedisKeys;
  readonly #connectTimeoutMs: number;
  readonly #rules: RuleCache;
  readonly #reads: GrantReads;
  readonly #expiries: ExpiryIndex;
  readonly #audit: AuditStream;
  readonly #revocations: Revocations;
  readonly #bus: NodeBus;
  readonly #hot: HotPath;
  readonly #durable: DurableWrites;

  constructor(options: RedisStoreOptions) {
    const connection: RedisConnection = options.connection ?? {
      kind: "single",
      url: options.url ?? "redis://127.0.0.1:6379",
    };
    const nodeId = newNodeId();
    const wait = (options.waitReplicas ?? 0) > 0;
    const { redis, subscriber, writer } = openClients(connection, options, `prs:${nodeId}`, wait);
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#keys = new RedisKeys(options.prefix);
    this.#durable = new DurableWrites(writer ?? redis, this.#keys.durable(), options);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.redis.connectTimeoutMs;
    const reloadMs = options.rulesReloadMs ?? DEFAULTS.redis.rulesReloadMs;
    this.#rules = new RuleCache(redis, subscriber, this.#keys, reloadMs);
    this.#reads = new GrantReads(redis, this.#keys);
    this.#expiries = new ExpiryIndex(redis, this.#keys);
    this.#audit = new AuditStream(redis, this.#keys.audit(), options.auditMaxLen);
    this.#bus = new NodeBus({
      id: nodeId,
      redis,
      subscriber,
      keys: this.#keys,
      leaseMs: options.nodeLeaseMs ?? DEFAULTS.redis.nodeLeaseMs,
      store: {
        rule: (id) => this.#rules.load(id),
        cut: (cut) => this.#hot.local?.cut(cut),
        resync: () => {
          this.#hot.local?.clear();
          return this.#rules.reload();
        },
      },
    });
    this.#revocations = new Revocations(this.#durable, this.#keys, this.#expiries, this.#bus);
    this.#hot = new HotPath(redis, this.#keys, this.#rules, this.#bus, options.nodeLocal !== false);
  }

  /**
   * Connects, loads the revocation rules and subscribes to their changes; rejects with
   * StoreUnavailableError after the timeout. Nothing is served before the rules are loaded.
   */
  connect(): Promise<void> {
    return connectWithin(this.#connectTimeoutMs, async (within) => {
      await within(this.#redis.connect());
      await within(this.#redis.ping());
      for (const own of this.#durable.own) await within(own.connect());
      await this.#rules.start(within, this.#bus.channels);
      await this.#bus.start(within);
    });
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
      k.tokenSet(grant.tree, grant.id),
    ];
    if (parent) keys.push(k.token(parent.tree, parent.hash));
    const prefix = await this.#rules.prefixArgs(grant.tree, parent, now);
    if (!Array.isArray(prefix)) return prefix;
    const args = [
      ...prefix,
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
    const [reply] = await Promise.all([
      call(() => this.#redis.prsCreate(keys.length, ...keys, ...args)),
      // Separate key (not in the tree's slot): issued in the same tick, so auto-pipelined.
      this.#expiries.track(grant.id, token.expiresAt),
    ]);
    return reply[0] === "ok" ? { ok: true } : decodeDenial<TokenDenial | "delegation_denied">(reply);
  }

  /** The hot path: node-local when it can be (`hot-path.ts`), else the script. */
  authorize(
    ref: TokenRef,
    now: number,
    candidates: readonly Candidate[],
    lease: Lease = defaultLease(now),
  ): Promise<AuthorizeResult> {
    return this.#hot.authorize(ref, now, candidates, lease);
  }

  settle(settlements: readonly Settlement[]): Promise<void> {
    return settleFlights(this.#redis, this.#keys, settlements);
  }

  renew(flights: readonly Flight[], until: number): Promise<void> {
    return renewFlights(this.#redis, this.#keys, flights, until);
  }

  async inspect(ref: TokenRef, now: number): Promise<InspectResult> {
    const prefix = await this.#rules.prefixArgs(ref.tree, ref, now);
    if (!Array.isArray(prefix)) return prefix;
    const reply = await call(() => this.#redis.prsInspect(this.#keys.token(ref.tree, ref.hash), ...prefix));
    if (reply[0] !== "ok") return decodeDenial<TokenDenial>(reply);
    const fields = pairsToMap(reply, after(TOKEN_AND_GRANT));
    const grant = grantFromFields(field(TOKEN_AND_GRANT, reply, "grantId"), ref.tree, fields);
    return {
      ok: true,
      token: tokenFromReply(reply, ref.hash),
      grant,
      used: Number(grantHash(fields)("used") ?? 0),
      ...spendOf(grantStateFromFields(grant.id, ref.tree, fields)),
    };
  }

  async refresh(ref: TokenRef, now: number, next: RefreshInput): Promise<RefreshResult> {
    const k = this.#keys;
    const prefix = await this.#rules.prefixArgs(ref.tree, ref, now);
    if (!Array.isArray(prefix)) return prefix;
    const reply = await call(() =>
      this.#redis.prsRefresh(
        k.token(ref.tree, ref.hash),
        k.token(ref.tree, next.hash),
        k.tokenId(ref.tree, next.tokenId),
        ...prefix,
        next.tokenId,
        next.hash,
        next.ttl ?? 0,
        RECORD_GRACE_MS,
      ),
    );
    if (reply[0] !== "ok") return decodeDenial<TokenDenial | "ttl_exceeded">(reply);
    const grant = grantFromFields(
      field(TOKEN_AND_GRANT, reply, "grantId"),
      ref.tree,
      pairsToMap(reply, after(TOKEN_AND_GRANT)),
    );
    const token = tokenFromReply(reply, next.hash);
    await this.#expiries.track(grant.id, token.expiresAt);
    return { ok: true, token, grant };
  }

  revokeGrant(grantId: string, now: number): Promise<Revoked> {
    return this.#revocations.grant(grantId, now);
  }

  revokeToken(tokenId: string, now: number): Promise<RevokeTokenResult> {
    return this.#revocations.token(tokenId, now);
  }

  /** Purges what a rule selects (`bulk-purge.ts`); every batch's grants are pushed to be cut. */
  purge(rule: RevocationRule, now: number): Promise<Revoked & { tokens: number }> {
    return this.#revocations.purge(rule, now);
  }

  deafSince(): number | undefined {
    return this.#bus.staleSince;
  }

  serve(work: NodeWork): () => void {
    return this.#bus.serve(work);
  }

  async askLive(query: LiveQuery): Promise<NodeReport<LiveInfo>> {
    const report = await this.#bus.ask("live", query);
    return { ...report, answers: report.answers.flat() };
  }

  /** Stores the rule, and answers once every live node has loaded it. */
  async putRule(rule: RevocationRule): Promise<void> {
    await this.#rules.put(rule, this.#durable.redis);
    await this.#durable.alongside(this.#bus.ask("rule", rule.id));
  }

  /** This node's id among the live nodes (the node bus). */
  get nodeId(): string {
    return this.#bus.id;
  }

  rules(): readonly RevocationRule[] {
    return this.#rules.rules;
  }

  /** Reads every rule from Redis (at start, on reconnects, and periodically); drops expired ones. */
  reloadRules(now = Date.now()): Promise<void> {
    return this.#rules.reload(now);
  }

  preview(rule: RevocationRule, now: number): Promise<number> {
    return this.#reads.preview(rule, now);
  }

  getGrant(grantId: string, now: number): Promise<GrantState | undefined> {
    return this.#reads.grant(grantId, now);
  }

  getLineage(grantId: string, now: number): Promise<GrantLineage | undefined> {
    return this.#reads.lineage(grantId, now);
  }

  listGrants(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }> {
    return this.#reads.list(filter, cursor, limit, now);
  }

  getToken(tokenId: string, now: number): Promise<TokenState | undefined> {
    return this.#reads.token(tokenId, now);
  }

  claimExpired(now: number, limit: number): Promise<ExpiredGrant[]> {
    return this.#expiries.claim(now, limit);
  }

  countLiveGrants(now: number): Promise<number> {
    return this.#expiries.countLive(now);
  }

  appendAudit(lines: readonly AuditLine[]): Promise<void> {
    return this.#audit.append(lines);
  }

  readAudit(query: AuditQuery): Promise<AuditRead> {
    return this.#audit.read(query);
  }

  async claimOnce(value: string, ttlMs: number): Promise<boolean> {
    return (await call(() => this.#redis.set(this.#keys.once(value), "1", "PX", ttlMs, "NX"))) === "OK";
  }

  async ping(): Promise<void> {
    await call(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    this.#rules.stop();
    this.#hot.local?.clear(); // gives back unspent rate slices
    await this.#bus.stop();
    for (const client of [this.#subscriber, ...this.#durable.own, this.#redis]) {
      if (client.status === "end") continue;
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    }
  }

  /** For tests and tools that need to look at what is stored. */
  get client(): Client {
    return this.#redis;
  }
}

/** `{ spend }` of a tracked grant's state, or nothing. */
const spendOf = (state: GrantState): { spend?: SpendState } => (state.spend ? { spend: state.spend } : {});
