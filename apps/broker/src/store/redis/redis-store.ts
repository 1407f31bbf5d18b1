import { type AuditEvent, grantTree, tokenIdTree } from "@perishable/protocol";
import { Cluster, type ClusterOptions, Redis, type RedisOptions, ReplyError } from "ioredis";
import { encodeRule, type RevocationRule, type RuleSubject, ruleSelects } from "../../policy/revocation.js";
import { RuleIndex } from "../../policy/rule-index.js";
import { auditMatches } from "../audit-filter.js";
import { RedisKeys } from "../keys.js";
import {
  type AuditQuery,
  type AuditRead,
  type AuditRecord,
  type AuthorizeDenial,
  type AuthorizeResult,
  type Candidate,
  type CreateResult,
  type ExpiredGrant,
  type GrantFilter,
  type GrantLineage,
  type GrantRecord,
  type GrantState,
  type InspectResult,
  RECORD_GRACE_MS,
  type RefreshInput,
  type RefreshResult,
  type RevokeTokenResult,
  type Store,
  StoreUnavailableError,
  type TokenDenial,
  type TokenRecord,
  type TokenRef,
  type TokenState,
} from "../types.js";
import { decodeDenial, grantFields, grantFromFields, grantStateFromFields, pairsToMap } from "./codec.js";
import {
  AUDIT_APPEND,
  AUTHORIZE,
  CREATE,
  FACTS,
  INSPECT,
  PURGE,
  REFRESH,
  REVOKE_GRANT,
  REVOKE_TOKEN,
} from "./scripts.js";

type Reply = string[];

interface ScriptCommands {
  prsAuthorize(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsFacts(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsCreate(...keysAndArgs: (string | number)[]): Promise<Reply>;
  prsRefresh(k1: string, k2: string, k3: string, ...args: (string | number)[]): Promise<Reply>;
  prsInspect(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsRevokeGrant(key: string, ...args: (string | number)[]): Promise<string[]>;
  prsRevokeToken(key: string, ...args: (string | number)[]): Promise<Reply>;
  prsPurge(key: string, ...args: (string | number)[]): Promise<[number, number, string[]]>;
  prsAuditAppend(key: string, ...args: (string | number)[]): Promise<number>;
}

type Client = Redis | Cluster;
type ScriptedRedis = Client & ScriptCommands;

/** Where Redis is: one server, a Cluster (seed nodes), or a master behind Sentinel. */
export type RedisConnection =
  | { readonly kind: "single"; readonly url: string }
  | { readonly kind: "cluster"; readonly urls: readonly string[] }
  | {
      readonly kind: "sentinel";
      readonly sentinels: readonly string[];
      readonly name: string;
      readonly password?: string | undefined;
    };

export interface RedisStoreOptions {
  /** One server, as a URL (shorthand for `connection: { kind: "single", url }`). */
  readonly url?: string;
  readonly connection?: RedisConnection;
  readonly prefix: string;
  readonly auditMaxLen: number;
  /** Per-command timeout: a hung Redis fails closed instead of hanging requests. */
  readonly commandTimeoutMs?: number;
  /** How long `connect()` waits for Redis before giving up. */
  readonly connectTimeoutMs?: number;
  /** How often rules are reloaded even without a pub/sub message (safety net). */
  readonly rulesReloadMs?: number;
}

/** Errors Redis answers with while it cannot serve (failover, loading, cluster trouble). */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MOVED|ASK)\b/;
/** Up to this many rules go into a token's first call whole; past it, its facts are fetched first. */
const RULES_SENT_WHOLE = 64;
/** Tokens whose chain facts a node keeps (oldest forgotten first); a forgotten one sends all rules once. */
const FACTS_CACHED = 100_000;
/** Grants read per SCAN step of a walk or a listing. */
const SCAN_COUNT = 2_000;

export class RedisStore implements Store {
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Client;
  readonly #keys: RedisKeys;
  readonly #auditMaxLen: number;
  readonly #connectTimeoutMs: number;
  readonly #rulesReloadMs: number;
  #rules: RevocationRule[] = [];
  /** The rules as script arguments: `n, rule…`, rebuilt whenever the rules change. */
  #ruleArgs: string[] = ["0"];
  #index = new RuleIndex([]);
  /** Token hash → what rules look at in its chain (immutable), for the tokens seen lately. */
  readonly #facts = new Map<string, Facts>();
  #reloadTimer: NodeJS.Timeout | undefined;

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
    const connection: RedisConnection = options.connection ?? {
      kind: "single",
      url: options.url ?? "redis://127.0.0.1:6379",
    };
    this.#redis = createClient(connection, redisOptions) as ScriptedRedis;
    // Rules arrive on their own connection (a subscribed connection can do nothing else). It
    // waits for Redis instead of failing fast (nothing waits on it), and it subscribes again
    // itself on every `ready`: ioredis's own re-subscribe is a promise nobody holds, and with
    // maxRetriesPerRequest 0 a connection dropped while it runs rejected it unhandled, which
    // ended the process.
    this.#subscriber = createClient(connection, {
      ...redisOptions,
      enableAutoPipelining: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
      commandTimeout: undefined,
    });
    // ioredis emits 'error' on every failed reconnect; the store reports availability through
    // ping() and StoreUnavailableError instead, so these are expected and not thrown.
    this.#redis.on("error", () => {});
    this.#subscriber.on("error", () => {});
    this.#keys = new RedisKeys(options.prefix);
    this.#auditMaxLen = options.auditMaxLen;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.#rulesReloadMs = options.rulesReloadMs ?? 5_000;
    const scripts = {
      prsAuthorize: [1, AUTHORIZE],
      prsFacts: [1, FACTS],
      prsCreate: [undefined, CREATE],
      prsRefresh: [3, REFRESH],
      prsInspect: [1, INSPECT],
      prsRevokeGrant: [1, REVOKE_GRANT],
      prsRevokeToken: [1, REVOKE_TOKEN],
      prsPurge: [1, PURGE],
      prsAuditAppend: [1, AUDIT_APPEND],
    } as const;
    for (const [name, [numberOfKeys, lua]] of Object.entries(scripts)) {
      this.#redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua });
    }
  }

  /**
   * Connects, loads the revocation rules and subscribes to their changes; rejects with
   * StoreUnavailableError after the timeout. Nothing is served before the rules are loaded.
   */
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
      await Promise.race([this.#subscriber.connect(), timer]);
      // A message names one rule: read just that one (a full reload per message would make N
      // revocations cost N² rule reads); the periodic reload and every reconnect read them all.
      this.#subscriber.on(
        "message",
        (_channel: string, id: string) => void this.#loadRule(id).catch(() => {}),
      );
      await Promise.race([this.#subscriber.subscribe(this.#keys.rules()), timer]);
      // After a reconnect: subscribe again, and reload, since the channel may have missed messages.
      this.#subscriber.on("ready", () => this.#resubscribe());
      await Promise.race([this.reloadRules(), timer]);
    } catch (error) {
      throw error instanceof StoreUnavailableError
        ? error
        : new StoreUnavailableError("cannot connect to Redis", { cause: error });
    }
    this.#reloadTimer = setInterval(() => void this.reloadRules().catch(() => {}), this.#rulesReloadMs);
    this.#reloadTimer.unref();
  }

  #resubscribe(): void {
    this.#subscriber.subscribe(this.#keys.rules()).then(
      () => this.reloadRules().catch(() => {}),
      // Dropped again before it could subscribe: the next `ready` tries again. Any other failure
      // leaves a connection that hears nothing: drop it so that it reconnects and tries again.
      () => {
        if (this.#subscriber.status === "ready") this.#subscriber.disconnect(true);
      },
    );
    void this.reloadRules().catch(() => {});
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
    const args = [
      ...this.#prefixArgs(grant.tree, now),
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
    const [reply] = await this.#call(() =>
      Promise.all([
        this.#redis.prsCreate(keys.length, ...keys, ...args),
        // Separate key (not in the tree's slot): issued in the same tick, so auto-pipelined.
        this.#redis.zadd(k.expiries(), "GT", token.expiresAt, grant.id),
      ]),
    );
    return reply[0] === "ok" ? { ok: true } : decodeDenial<TokenDenial>(reply);
  }

  async authorize(ref: TokenRef, now: number, candidates: readonly Candidate[]): Promise<AuthorizeResult> {
    // Rules go in only where they could select this token's chain, known from an earlier call:
    // authorisation costs the same with 0 or 10,000 live rules. A token seen for the first time
    // takes them all, and brings its chain's facts back for next time.
    let facts = this.#facts.get(ref.hash);
    if ((facts === undefined || facts.expiresAt <= now) && this.#rules.length > RULES_SENT_WHOLE) {
      // Many rules: learning the facts first (one more round trip, once per token) is cheaper
      // than sending them all.
      const reply = await this.#call(() =>
        this.#redis.prsFacts(this.#keys.token(ref.tree, ref.hash), this.#keys.base(ref.tree), now, "0"),
      );
      if (reply[0] !== "ok") return decodeDenial<AuthorizeDenial>(reply);
      facts = this.#remember(ref.hash, reply, 2, reply[1]!);
    }
    const known = facts !== undefined && facts.expiresAt > now;
    const ruleArgs = known ? encodeRules(this.#index.selecting(facts!.subjects, now)) : this.#ruleArgs;
    const args: (string | number)[] = [this.#keys.base(ref.tree), now, ...ruleArgs, candidates.length];
    for (const c of candidates) args.push(c.scope, c.pass ? "1" : "0", c.limit, c.windowMs);
    args.push(known ? "0" : "1");
    const reply = await this.#call(() =>
      this.#redis.prsAuthorize(this.#keys.token(ref.tree, ref.hash), ...args),
    );
    if (reply[0] !== "ok") return decodeDenial<AuthorizeDenial>(reply);
    if (!known && reply.length > 8) this.#remember(ref.hash, reply, 8, reply[3]!);
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
      this.#redis.prsInspect(this.#keys.token(ref.tree, ref.hash), ...this.#prefixArgs(ref.tree, now)),
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
        ...this.#prefixArgs(ref.tree, now),
        next.tokenId,
        next.hash,
        next.ttl ?? 0,
        RECORD_GRACE_MS,
      ),
    );
    if (reply[0] !== "ok") return decodeDenial<TokenDenial | "ttl_exceeded">(reply);
    const grant = grantFromFields(reply[2]!, ref.tree, pairsToMap(reply, 5));
    const token = tokenFromReply(reply, next.hash);
    await this.#call(() => this.#redis.zadd(k.expiries(), "GT", token.expiresAt, grant.id));
    return { ok: true, token, grant };
  }

  async revokeGrant(grantId: string, now: number): Promise<number> {
    const tree = grantTree(grantId);
    if (!tree) return 0;
    const revoked = await this.#call(() =>
      this.#redis.prsRevokeGrant(this.#keys.tree(tree), this.#keys.base(tree), grantId, now),
    );
    await this.#forgetExpiries(revoked);
    return revoked.length;
  }

  /**
   * Revoked or purged grants leave the expiry index, so the live count drops at once and the
   * watcher has nothing to claim. The index is a key of its own (its own slot on a cluster), so
   * this is a separate command after the tree's script; if it fails, the watcher skips them later.
   */
  async #forgetExpiries(grantIds: readonly string[]): Promise<void> {
    for (let i = 0; i < grantIds.length; i += SCAN_COUNT) {
      const chunk = grantIds.slice(i, i + SCAN_COUNT);
      await this.#call(() => this.#redis.zrem(this.#keys.expiries(), ...chunk));
    }
  }

  async revokeToken(tokenId: string, now: number): Promise<RevokeTokenResult> {
    const tree = tokenIdTree(tokenId);
    if (!tree) return { status: "none" };
    const reply = await this.#call(() =>
      this.#redis.prsRevokeToken(this.#keys.tokenId(tree, tokenId), this.#keys.base(tree), now),
    );
    if (reply[0] === "none") return { status: "none" };
    return {
      status: reply[0] as "revoked" | "already",
      subject: {
        grantId: reply[1]!,
        tokenId: reply[2]!,
        rootGrantId: reply[3] || null,
        parentGrantId: reply[4] || null,
        agent: reply[5] || null,
        issuedAt: Number(reply[6]),
      },
    };
  }

  async getGrant(grantId: string, now: number): Promise<GrantState | undefined> {
    const tree = grantTree(grantId);
    if (!tree) return undefined;
    const [state] = await this.#grantStates(tree, [grantId], now);
    return state;
  }

  async getLineage(grantId: string, now: number): Promise<GrantLineage | undefined> {
    const tree = grantTree(grantId);
    if (!tree) return undefined;
    const [self] = await this.#grantStates(tree, [grantId], now);
    if (!self) return undefined;
    const links = await this.#call(() => this.#redis.hgetall(this.#keys.tree(tree)));
    const ids = subtreeOf(links, grantId).slice(1);
    const states = await this.#grantStates(tree, [...self.grant.ancestors, ...ids], now);
    const byId = new Map(states.map((s) => [s.grant.id, s]));
    return {
      grant: self,
      ancestors: self.grant.ancestors
        .map((id) => byId.get(id))
        .filter((s): s is GrantState => s !== undefined),
      subtree: ids.map((id) => byId.get(id)).filter((s): s is GrantState => s !== undefined),
    };
  }

  async listGrants(
    filter: GrantFilter,
    cursor: string | null,
    limit: number,
    now: number,
  ): Promise<{ grants: GrantState[]; next: string | null }> {
    const grants: GrantState[] = [];
    if (filter.rootGrantId) {
      const tree = grantTree(filter.rootGrantId);
      if (!tree) return { grants, next: null };
      const links = await this.#call(() => this.#redis.hgetall(this.#keys.tree(tree)));
      const states = await this.#grantStates(tree, subtreeOf(links, filter.rootGrantId), now);
      return {
        grants: states.filter((s) => isLive(s, now) && matchesFilter(s.grant, filter)).slice(0, limit),
        next: null,
      };
    }
    // The cursor is "<master index>:<SCAN cursor>": a Cluster is walked one master after the other.
    const masters = this.#masters();
    let [node, scan] = parseCursor(cursor);
    while (node < masters.length && grants.length < limit) {
      const master = masters[node]!;
      const [next, keys] = await this.#call(() =>
        master.scan(scan, "MATCH", this.#keys.grantPattern(), "COUNT", SCAN_COUNT),
      );
      scan = next;
      const records = await this.#call(() => Promise.all(keys.map((key) => this.#redis.hgetall(key))));
      records.forEach((record, i) => {
        const state = stateFromKey(keys[i]!, record);
        if (state && isLive(state, now) && matchesFilter(state.grant, filter)) grants.push(state);
      });
      if (scan === "0") node += 1;
    }
    return { grants, next: node < masters.length ? `${node}:${scan}` : null };
  }

  async putRule(rule: RevocationRule): Promise<void> {
    const key = this.#keys.rules();
    await this.#call(async () => {
      await this.#redis.hset(key, rule.id, JSON.stringify(rule));
      await this.#redis.publish(key, rule.id);
    });
    this.#setRules([...this.#rules.filter((r) => r.id !== rule.id), rule]);
  }

  rules(): readonly RevocationRule[] {
    return this.#rules;
  }

  async #loadRule(id: string): Promise<void> {
    const json = await this.#call(() => this.#redis.hget(this.#keys.rules(), id));
    if (json === null) return;
    const rule = JSON.parse(json) as RevocationRule;
    this.#setRules([...this.#rules.filter((r) => r.id !== rule.id), rule]);
  }

  /** Reads every rule from Redis (at start, on every change message, and periodically); drops expired ones. */
  async reloadRules(now = Date.now()): Promise<void> {
    const key = this.#keys.rules();
    const stored = await this.#call(() => this.#redis.hgetall(key));
    const rules: RevocationRule[] = [];
    const expired: string[] = [];
    for (const [id, json] of Object.entries(stored)) {
      const rule = JSON.parse(json) as RevocationRule;
      if (rule.expiresAt <= now) expired.push(id);
      else rules.push(rule);
    }
    if (expired.length > 0) await this.#call(() => this.#redis.hdel(key, ...expired));
    this.#setRules(rules);
  }

  async purge(rule: RevocationRule, now: number): Promise<{ grants: number; tokens: number }> {
    let grants = 0;
    let tokens = 0;
    // SCAN every master (the one server, or each master of a Cluster), in batches.
    for (const master of this.#masters()) {
      let cursor = "0";
      do {
        const [next, keys] = await this.#call(() =>
          master.scan(cursor, "MATCH", this.#keys.grantPattern(), "COUNT", SCAN_COUNT),
        );
        cursor = next;
        if (keys.length === 0) continue;
        const fields = await this.#call(() =>
          Promise.all(keys.map((key) => this.#redis.hmget(key, "agent", "scopes", "root", "ca", "na"))),
        );
        const selected = new Map<string, { ids: string[]; tombUntil: number }>();
        fields.forEach(([agent, scopes, root, ca, na], i) => {
          if (!root || !ca || !na) return;
          const id = keys[i]!.slice(keys[i]!.lastIndexOf(":") + 1);
          const subject = {
            agent: agent ?? "",
            scopes: scopes ? scopes.split(",") : [],
            rootId: root,
            createdAt: Number(ca),
          };
          if (!ruleSelects(rule, subject)) return;
          const tree = grantTree(id)!;
          const batch = selected.get(tree) ?? { ids: [], tombUntil: 0 };
          batch.ids.push(id);
          batch.tombUntil = Math.max(batch.tombUntil, Number(na) + RECORD_GRACE_MS);
          selected.set(tree, batch);
        });
        const results = await this.#call(() =>
          Promise.all(
            [...selected].map(([tree, batch]) =>
              this.#redis.prsPurge(
                this.#keys.tree(tree),
                this.#keys.base(tree),
                now,
                batch.tombUntil,
                ...batch.ids,
              ),
            ),
          ),
        );
        const gone: string[] = [];
        for (const [g, t, ids] of results) {
          grants += Number(g);
          tokens += Number(t);
          gone.push(...ids);
        }
        // One ZREM per chunk of this SCAN batch, not one per tree: every root grant is a tree.
        await this.#forgetExpiries(gone);
      } while (cursor !== "0");
    }
    return { grants, tokens };
  }

  async preview(rule: RevocationRule, now: number): Promise<number> {
    const selected = new Map<string, string[]>();
    for (const master of this.#masters()) {
      let cursor = "0";
      do {
        const [next, keys] = await this.#call(() =>
          master.scan(cursor, "MATCH", this.#keys.grantPattern(), "COUNT", SCAN_COUNT),
        );
        cursor = next;
        const fields = await this.#call(() =>
          Promise.all(keys.map((key) => this.#redis.hmget(key, "agent", "scopes", "root", "ca"))),
        );
        fields.forEach(([agent, scopes, root, ca], i) => {
          if (!root || !ca) return;
          const id = keys[i]!.slice(keys[i]!.lastIndexOf(":") + 1);
          if (
            !ruleSelects(rule, {
              agent: agent ?? "",
              scopes: scopes ? scopes.split(",") : [],
              rootId: root,
              createdAt: Number(ca),
            })
          )
            return;
          const tree = grantTree(id)!;
          selected.set(tree, [...(selected.get(tree) ?? []), id]);
        });
      } while (cursor !== "0");
    }
    let live = 0;
    for (const [tree, ids] of selected) {
      const links = await this.#call(() => this.#redis.hgetall(this.#keys.tree(tree)));
      const all = new Set(ids.flatMap((id) => subtreeOf(links, id)));
      const states = await this.#grantStates(tree, [...all], now);
      live += states.filter((s) => isLive(s, now)).length;
    }
    return live;
  }

  async getToken(tokenId: string, now: number): Promise<TokenState | undefined> {
    const tree = tokenIdTree(tokenId);
    if (!tree) return undefined;
    const hash = await this.#call(() => this.#redis.get(this.#keys.tokenId(tree, tokenId)));
    if (!hash) return undefined;
    const [grantId, issuedAt, expiresAt, revoked] = await this.#call(() =>
      this.#redis.hmget(this.#keys.token(tree, hash), "g", "a", "e", "r"),
    );
    if (!grantId || Number(expiresAt) + RECORD_GRACE_MS <= now) return undefined;
    return {
      tokenId,
      grantId,
      issuedAt: Number(issuedAt),
      expiresAt: Number(expiresAt),
      revoked: revoked !== null,
    };
  }

  async claimExpired(now: number, limit: number): Promise<ExpiredGrant[]> {
    const key = this.#keys.expiries();
    const due = await this.#call(() => this.#redis.zrangebyscore(key, "-inf", now, "LIMIT", 0, limit));
    const claimed: ExpiredGrant[] = [];
    for (const grantId of due) {
      // ZREM is the claim: across every broker node, exactly one gets 1 back.
      if ((await this.#call(() => this.#redis.zrem(key, grantId))) !== 1) continue;
      const tree = grantTree(grantId);
      if (!tree) continue;
      const [na, rev, agent, root, par, lt, le] = await this.#call(() =>
        this.#redis.hmget(this.#keys.grant(tree, grantId), "na", "rev", "agent", "root", "par", "lt", "le"),
      );
      if (!na || rev) continue; // purged or revoked: that was its end, already audited
      if (le && Number(le) > now) {
        // Refreshed after the claim was due (the score lags the record): put it back.
        await this.#call(() => this.#redis.zadd(key, "GT", Number(le), grantId));
        continue;
      }
      claimed.push({
        reason: Number(le ?? 0) >= Number(na) ? "grant" : "token",
        subject: {
          grantId,
          tokenId: lt ?? null,
          rootGrantId: root ?? null,
          parentGrantId: par || null,
          agent: agent ?? null,
          issuedAt: null,
        },
      });
    }
    return claimed;
  }

  async countLiveGrants(now: number): Promise<number> {
    return this.#call(() => this.#redis.zcount(this.#keys.expiries(), `(${now}`, "+inf"));
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    // One script call per batch: one command for the broker to send, whatever the batch size.
    const args: (string | number)[] = [this.#auditMaxLen];
    for (const event of events) args.push(JSON.stringify(event));
    await this.#call(() => this.#redis.prsAuditAppend(this.#keys.audit(), ...args));
  }

  async readAudit(query: AuditQuery): Promise<AuditRead> {
    const key = this.#keys.audit();
    const records: AuditRecord[] = [];
    // Filters are applied here; a page stops after scanning this many entries even if it is not full.
    const budget = Math.max(1_000, query.limit * 20);
    let scanned = 0;
    const chunk = Math.min(1_000, Math.max(100, query.limit * 2));
    if (query.after !== undefined || query.since !== undefined) {
      let cursor: string | null = query.after ?? null;
      let start = query.after !== undefined ? `(${query.after}` : `${query.since}-0`;
      while (records.length < query.limit && scanned < budget) {
        const entries = await this.#call(() => this.#redis.xrange(key, start, "+", "COUNT", chunk));
        if (entries.length === 0) break;
        for (const [id, fields] of entries) {
          scanned += 1;
          cursor = id;
          const event = parseEvent(fields);
          if (event && auditMatches(event, query)) records.push({ id, event });
          if (records.length >= query.limit) break;
        }
        start = `(${cursor}`;
      }
      return { records, next: cursor };
    }
    // The most recent matching events, returned oldest first; `next` is the newest id seen,
    // so that polling with it as `after` continues from now.
    let end = "+";
    let newest: string | null = null;
    while (records.length < query.limit && scanned < budget) {
      const entries = await this.#call(() => this.#redis.xrevrange(key, end, "-", "COUNT", chunk));
      if (entries.length === 0) break;
      newest ??= entries[0]![0];
      scanned += entries.length;
      for (const [id, fields] of entries) {
        const event = parseEvent(fields);
        if (event && auditMatches(event, query)) records.push({ id, event });
        if (records.length >= query.limit) break;
      }
      end = `(${entries.at(-1)![0]}`;
    }
    records.reverse();
    return { records, next: newest };
  }

  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    if (this.#reloadTimer) clearInterval(this.#reloadTimer);
    for (const client of [this.#subscriber, this.#redis]) {
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

  #prefixArgs(tree: string, now: number): (string | number)[] {
    return [this.#keys.base(tree), now, ...this.#ruleArgs];
  }

  #setRules(rules: RevocationRule[]): void {
    this.#rules = rules.sort((a, b) => a.createdAt - b.createdAt);
    this.#ruleArgs = encodeRules(this.#rules);
    this.#index = new RuleIndex(this.#rules);
  }

  /** Keeps a token's chain facts (expiresAt at `from`, then triples) until the token expires. */
  #remember(hash: string, reply: Reply, from: number, rootId: string): Facts {
    const subjects: RuleSubject[] = [];
    for (let i = from + 1; i + 2 < reply.length; i += 3) {
      subjects.push({
        agent: reply[i]!,
        scopes: reply[i + 1] ? reply[i + 1]!.split(",") : [],
        rootId,
        createdAt: Number(reply[i + 2]),
      });
    }
    if (this.#facts.size >= FACTS_CACHED) this.#facts.delete(this.#facts.keys().next().value!);
    const facts = { expiresAt: Number(reply[from]), subjects };
    this.#facts.set(hash, facts);
    return facts;
  }

  async #grantStates(tree: string, ids: readonly string[], now: number): Promise<GrantState[]> {
    const records = await this.#call(() =>
      Promise.all(ids.map((id) => this.#redis.hgetall(this.#keys.grant(tree, id)))),
    );
    const states: GrantState[] = [];
    records.forEach((record, i) => {
      if (!record.na || Number(record.na) + RECORD_GRACE_MS <= now) return;
      states.push(grantStateFromFields(ids[i]!, tree, new Map(Object.entries(record))));
    });
    return states;
  }

  /** The servers to SCAN: every master of a Cluster, or the one server. */
  #masters(): Redis[] {
    return this.#redis instanceof Cluster ? this.#redis.nodes("master") : [this.#redis as Redis];
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toStoreError(error);
    }
  }
}

/** What revocation rules look at in a token's chain: it never changes, so it is kept until the token expires. */
interface Facts {
  readonly expiresAt: number;
  readonly subjects: readonly RuleSubject[];
}

/** Rules as the scripts' arguments: `n, rule…`. */
const encodeRules = (rules: readonly RevocationRule[]): string[] => [
  String(rules.length),
  ...rules.map(encodeRule),
];

const parseCursor = (cursor: string | null): [number, string] => {
  if (!cursor) return [0, "0"];
  const [node, scan] = cursor.includes(":") ? cursor.split(":") : ["0", cursor];
  return [Number(node) || 0, scan ?? "0"];
};

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379) };
};

/** Credentials and TLS from a redis(s):// URL, for clients built from host/port lists. */
const authOf = (url: string | undefined): Partial<RedisOptions> => {
  if (!url) return {};
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
  };
};

const createClient = (connection: RedisConnection, options: RedisOptions): Client => {
  switch (connection.kind) {
    case "single":
      return new Redis(connection.url, options);
    case "cluster": {
      const { lazyConnect, enableOfflineQueue, enableAutoPipelining: _unused, ...redisOptions } = options;
      const clusterOptions: ClusterOptions = {
        lazyConnect,
        enableOfflineQueue,
        // ioredis's auto-pipelining groups commands by node, and its cluster pipelines insist on one
        // slot group: commands of different lineage trees issued in the same tick then fail. Off here.
        enableAutoPipelining: false,
        scaleReads: "master",
        clusterRetryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
        redisOptions: { ...redisOptions, ...authOf(connection.urls[0]) },
      };
      return new Cluster(connection.urls.map(hostPort), clusterOptions);
    }
    case "sentinel": {
      const sentinelAuth = authOf(connection.sentinels[0]);
      return new Redis({
        ...options,
        sentinels: connection.sentinels.map(hostPort),
        name: connection.name,
        ...(connection.password ? { password: connection.password } : {}),
        ...(sentinelAuth.password ? { sentinelPassword: sentinelAuth.password } : {}),
        ...(sentinelAuth.username ? { sentinelUsername: sentinelAuth.username } : {}),
      });
    }
  }
};

/** The token part of an inspect or refresh reply: {'ok', tokenId, grantId, issuedAt, expiresAt, …}. */
const tokenFromReply = (reply: Reply, hash: string): TokenRecord => ({
  tokenId: reply[1]!,
  hash,
  grantId: reply[2]!,
  issuedAt: Number(reply[3]),
  expiresAt: Number(reply[4]),
});

const stateFromKey = (key: string, fields: Record<string, string>): GrantState | undefined => {
  const id = key.slice(key.lastIndexOf(":") + 1);
  const tree = grantTree(id);
  if (!tree || !fields.na) return undefined;
  return grantStateFromFields(id, tree, new Map(Object.entries(fields)));
};

const parseEvent = (fields: string[]): AuditEvent | undefined => {
  try {
    return JSON.parse(fields[1] ?? "") as AuditEvent;
  } catch {
    return undefined;
  }
};

/** The grant and every grant below it, parents before children, from the tree hash (id → parent). */
export const subtreeOf = (links: Record<string, string>, rootId: string): string[] => {
  const children = new Map<string, string[]>();
  for (const [id, parent] of Object.entries(links)) {
    if (parent) children.set(parent, [...(children.get(parent) ?? []), id]);
  }
  const out = [rootId];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
};

export const isLive = (state: GrantState, now: number): boolean =>
  state.revokedAt === null && state.grant.notAfter > now;

export const matchesFilter = (grant: GrantRecord, filter: GrantFilter): boolean =>
  (filter.agent === undefined || grant.agent === filter.agent) &&
  (filter.scope === undefined || grant.scopes.includes(filter.scope)) &&
  (filter.rootGrantId === undefined || grant.rootId === filter.rootGrantId);

/**
 * Anything that stops Redis from answering is StoreUnavailableError (→ 503, fail closed). A
 * ReplyError that is not about availability is a bug in a script: it propagates as is (→ 500).
 */
const toStoreError = (error: unknown): Error => {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof ReplyError && !TRANSIENT_REPLY.test((error as Error).message)) return error as Error;
  return new StoreUnavailableError("store unavailable", { cause: error });
};
