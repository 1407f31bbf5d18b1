import { encodeRule, type RevocationRule, type RuleSubject } from "../../policy/revocation.js";
import { RuleIndex } from "../../policy/rule-index.js";
import type { RedisKeys } from "../keys.js";
import type { AuthorizeDenial, Denied, TokenDenial, TokenRef } from "../types.js";
import { type Client, call, type Reply, type ScriptedRedis } from "./client.js";
import { decodeDenial } from "./codec.js";
import { CHAIN_FACTS, field } from "./schema.js";

/** Up to this many rules go into a token's first call whole; past it, its facts are fetched first. */
const RULES_SENT_WHOLE = 64;
/** Tokens whose chain facts a node keeps (oldest forgotten first); a forgotten one sends all rules once. */
const FACTS_CACHED = 100_000;

/** What revocation rules look at in a token's chain: it never changes, so it is kept until the token expires. */
interface Facts {
  readonly expiresAt: number;
  readonly subjects: readonly RuleSubject[];
}

/** The rules a script call carries (`n, rule…`), and whether the call should bring the chain's facts back. */
export interface RuleArgs {
  readonly args: readonly string[];
  readonly wantFacts: boolean;
}

/**
 * A node's copy of the live revocation rules: stored in Redis, pushed to every node over pub/sub
 * (a message names the rule), read again on every reconnect and every few seconds. Indexed, and
 * with each token's chain facts kept from its first call, so a call carries only the rules that
 * could select its token: authorisation costs the same with 0 or 10,000 live rules.
 */
export class RuleCache {
  readonly #redis: ScriptedRedis;
  readonly #subscriber: Client;
  readonly #keys: RedisKeys;
  readonly #reloadMs: number;
  #rules: RevocationRule[] = [];
  /** The rules as script arguments, rebuilt whenever the rules change. */
  #all: string[] = ["0"];
  #index = new RuleIndex([]);
  /** Token hash → what rules look at in its chain, for the tokens seen lately. */
  readonly #facts = new Map<string, Facts>();
  #timer: NodeJS.Timeout | undefined;
  #channels: string[] = [];

  constructor(redis: ScriptedRedis, subscriber: Client, keys: RedisKeys, reloadMs: number) {
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#keys = keys;
    this.#reloadMs = reloadMs;
  }

  /**
   * Subscribes (to the rules channel and `channels`, the node bus's) and loads the rules; nothing
   * is served before they are loaded.
   */
  async start(within: <T>(p: Promise<T>) => Promise<T>, channels: readonly string[]): Promise<void> {
    this.#channels = [this.#keys.rules(), ...channels];
    await within(this.#subscriber.connect());
    // A message names one rule: read just that one (a full reload per message would make N
    // revocations cost N² rule reads); the periodic reload and every reconnect read them all.
    this.#subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.#keys.rules()) void this.load(message).catch(() => {});
    });
    await within(this.#subscriber.subscribe(...this.#channels));
    // After a reconnect: subscribe again, and reload, since the channel may have missed messages.
    this.#subscriber.on("ready", () => this.#resubscribe());
    await within(this.reload());
    this.#timer = setInterval(() => void this.reload().catch(() => {}), this.#reloadMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  get rules(): readonly RevocationRule[] {
    return this.#rules;
  }

  /** Every rule, as the scripts that act on a token without facts take them. */
  get all(): readonly string[] {
    return this.#all;
  }

  /** Stores a rule (`via`: the connection revocations are written on, durable.ts). */
  async put(rule: RevocationRule, via: Client = this.#redis): Promise<void> {
    const key = this.#keys.rules();
    await call(() => via.hset(key, rule.id, JSON.stringify(rule)));
    this.#upsert(rule);
  }

  /** Reads every rule from Redis; drops expired ones. */
  async reload(now = Date.now()): Promise<void> {
    const key = this.#keys.rules();
    const stored = await call(() => this.#redis.hgetall(key));
    const rules: RevocationRule[] = [];
    const expired: string[] = [];
    for (const [id, json] of Object.entries(stored)) {
      const rule = JSON.parse(json) as RevocationRule;
      if (rule.expiresAt <= now) expired.push(id);
      else rules.push(rule);
    }
    if (expired.length > 0) await call(() => this.#redis.hdel(key, ...expired));
    this.#set(rules);
  }

  /**
   * The rules for an authorize call of this token. A token seen before carries the rules its facts
   * select; a new one carries them all (few) or has its facts read first (many: one more round
   * trip, once per token); a chain that is refused anyway comes back as its denial.
   */
  async forToken(ref: TokenRef, now: number): Promise<RuleArgs | Denied<AuthorizeDenial>> {
    let facts = this.#facts.get(ref.hash);
    if ((facts === undefined || facts.expiresAt <= now) && this.#rules.length > RULES_SENT_WHOLE) {
      const reply = await call(() =>
        this.#redis.prsFacts(this.#keys.token(ref.tree, ref.hash), this.#keys.base(ref.tree), now, "0"),
      );
      if (reply[0] !== "ok") return decodeDenial<AuthorizeDenial>(reply);
      facts = this.remember(ref.hash, reply, CHAIN_FACTS.indexOf("expiresAt"), {
        rootId: field(CHAIN_FACTS, reply, "rootGrantId"),
        onBehalfOf: field(CHAIN_FACTS, reply, "onBehalfOf") || undefined,
        triples: CHAIN_FACTS.length,
      });
    }
    if (facts === undefined || facts.expiresAt <= now) return { args: this.#all, wantFacts: true };
    return { args: encodeRules(this.#index.selecting(facts.subjects, now)), wantFacts: false };
  }

  /**
   * The argument prefix of every script that acts on a token: base, now, and the rules that could
   * select that token's chain (as for authorize: with many live rules, issuing, refreshing or
   * delegating must not carry all of them). No token (a new root grant): no chain, no rules.
   */
  async prefixArgs(
    tree: string,
    ref: TokenRef | undefined,
    now: number,
  ): Promise<(string | number)[] | Denied<TokenDenial>> {
    if (!ref) return [this.#keys.base(tree), now, "0"];
    const rules = await this.forToken(ref, now);
    if ("code" in rules) return rules as Denied<TokenDenial>;
    return [this.#keys.base(tree), now, ...rules.args];
  }

  /** Whether a live rule selects any grant of a chain (the node-local path then asks the script). */
  selects(subjects: readonly RuleSubject[], now: number): boolean {
    return this.#index.selecting(subjects, now).length > 0;
  }

  /** Keeps a token's chain facts (expiresAt at `from`, agent/scopes/createdAt triples from `lineage.triples`). */
  remember(
    hash: string,
    reply: Reply,
    from: number,
    lineage: { readonly rootId: string; readonly onBehalfOf: string | undefined; readonly triples: number },
  ): Facts {
    const { rootId, onBehalfOf } = lineage;
    const subjects: RuleSubject[] = [];
    for (let i = lineage.triples; i + 2 < reply.length; i += 3) {
      subjects.push({
        agent: reply[i]!,
        scopes: reply[i + 1] ? reply[i + 1]!.split(",") : [],
        rootId,
        onBehalfOf,
        createdAt: Number(reply[i + 2]),
      });
    }
    if (this.#facts.size >= FACTS_CACHED) this.#facts.delete(this.#facts.keys().next().value!);
    const facts = { expiresAt: Number(reply[from]), subjects };
    this.#facts.set(hash, facts);
    return facts;
  }

  #resubscribe(): void {
    this.#subscriber.subscribe(...this.#channels).then(
      () => this.reload().catch(() => {}),
      // Dropped again before it could subscribe: the next `ready` tries again. Any other failure
      // leaves a connection that hears nothing: drop it so that it reconnects and tries again.
      () => {
        if (this.#subscriber.status === "ready") this.#subscriber.disconnect(true);
      },
    );
    void this.reload().catch(() => {});
  }

  /** Reads one rule (named by a message on the rules channel, or a node bus question). */
  async load(id: string): Promise<void> {
    const json = await call(() => this.#redis.hget(this.#keys.rules(), id));
    if (json !== null) this.#upsert(JSON.parse(json) as RevocationRule);
  }

  #upsert(rule: RevocationRule): void {
    this.#set([...this.#rules.filter((r) => r.id !== rule.id), rule]);
  }

  #set(rules: RevocationRule[]): void {
    this.#rules = rules.sort((a, b) => a.createdAt - b.createdAt);
    this.#all = encodeRules(this.#rules);
    this.#index = new RuleIndex(this.#rules);
  }
}

/** Rules as the scripts' arguments: `n, rule…`. */
const encodeRules = (rules: readonly RevocationRule[]): string[] => [
  String(rules.length),
  ...rules.map(encodeRule),
];
