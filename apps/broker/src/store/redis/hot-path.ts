import { grantTree } from "@perishable/protocol";
import type { RuleSubject } from "../../policy/revocation.js";
import type { RedisKeys } from "../keys.js";
import { defaultLease } from "../lease.js";
import type { AuthorizeDenial, AuthorizeResult, Candidate, Lease, Subject, TokenRef } from "../types.js";
import { call, type ScriptedRedis } from "./client.js";
import { decodeDenial, decodeLeft, subjectOf } from "./codec.js";
import { settleFlights } from "./flights.js";
import { LocalAuthority, type LocalEntry } from "./local-authority.js";
import type { NodeBus } from "./node-bus.js";
import type { RuleCache } from "./rule-cache.js";
import { AUTHORIZED, field } from "./schema.js";
import { Slices } from "./slices.js";
import { SpendSlices, spendLeaseArgs, spendLeaseOf } from "./spend-slices.js";

/**
 * The proxied request's authorisation on Redis: from node-local state when the node can answer
 * alone (`local-authority.ts`, `store.node_local`), else one AUTHORIZE script call — which also
 * brings back what the node needs to answer alone next time.
 */
export class HotPath {
  readonly #redis: ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #rules: RuleCache;
  readonly #bus: NodeBus;
  /** Undefined with `store.node_local: false`: every request runs the script. */
  readonly local: LocalAuthority | undefined;

  constructor(redis: ScriptedRedis, keys: RedisKeys, rules: RuleCache, bus: NodeBus, nodeLocal: boolean) {
    this.#redis = redis;
    this.#keys = keys;
    this.#rules = rules;
    this.#bus = bus;
    this.local = nodeLocal ? new LocalAuthority(this.#slices(), this.#spendSlices()) : undefined;
  }

  async authorize(
    ref: TokenRef,
    now: number,
    candidates: readonly Candidate[],
    lease: Lease = defaultLease(now),
  ): Promise<AuthorizeResult> {
    const { local } = this;
    if (local && this.#bus.fresh) {
      const answer = await local.authorize(
        ref.hash,
        now,
        candidates,
        (subjects) => this.#rules.selects(subjects, now),
        () => this.#bus.fresh,
        lease,
      );
      if (answer) return answer;
    }
    const rules = await this.#rules.forToken(ref, now);
    if ("code" in rules) return rules;
    // A token this node does not serve yet brings its chain's facts back, to be served next time.
    const wantFacts = rules.wantFacts || (local !== undefined && !local.known(ref.hash));
    const epoch = local?.epoch;
    const args: (string | number)[] = [this.#keys.base(ref.tree), now, ...rules.args, candidates.length];
    for (const c of candidates)
      args.push(c.scope, c.pass ? "1" : "0", c.limit, c.windowMs, c.worst?.usd ?? -1, c.worst?.tokens ?? -1);
    args.push(wantFacts ? "1" : "0", lease.id, lease.until);
    const reply = await call(() => this.#redis.prsAuthorize(this.#keys.token(ref.tree, ref.hash), ...args));
    if (reply[0] !== "ok") return decodeDenial<AuthorizeDenial>(reply);
    const subject = subjectOf(AUTHORIZED, reply);
    const notAfter = Number(field(AUTHORIZED, reply, "notAfter"));
    if (wantFacts && reply.length > FACTS_AT) {
      const facts = this.#rules.remember(ref.hash, reply, FACTS_AT, {
        rootId: subject.rootGrantId!,
        onBehalfOf: subject.onBehalfOf,
        triples: FACTS_AT + 2,
      });
      // Cached only if nothing was revoked while the call was out: it may predate the revocation.
      const entry = localEntry(reply, subject, notAfter, facts);
      if (local && entry && local.epoch === epoch) local.put(ref.hash, entry);
      else if (local && !entry) local.markCounted(ref.hash);
    }
    const member = field(AUTHORIZED, reply, "flight");
    const left = decodeLeft(field(AUTHORIZED, reply, "left"));
    return {
      ok: true,
      scope: field(AUTHORIZED, reply, "scope"),
      subject,
      flight: member ? { tree: ref.tree, member } : null,
      notAfter,
      ...(left ? { left } : {}),
    };
  }

  /** Slices of budgets and maxConcurrent leased as flights (flight-scripts.ts SPEND_LEASE), settled by SETTLE. */
  #spendSlices(): SpendSlices {
    const treeOf = (levels: readonly string[]) => grantTree(levels[0]!)!;
    return new SpendSlices({
      lease: async (levels, want, least, id, until) => {
        const tree = treeOf(levels);
        const reply = await call(() =>
          this.#redis.prsSpendLease(
            this.#keys.flights(tree),
            ...spendLeaseArgs(this.#keys.base(tree), id, until, want, least, levels),
          ),
        );
        return spendLeaseOf(reply);
      },
      settle: async (levels, member, usd, tokens) => {
        const tree = treeOf(levels);
        await settleFlights(this.#redis, this.#keys, [{ flight: { tree, member }, cost: { usd, tokens } }]);
      },
      renew: async (levels, member, until) => {
        const key = this.#keys.flights(treeOf(levels));
        return (await call(() => this.#redis.zadd(key, "XX", "GT", "CH", until, member))) === 1;
      },
    });
  }

  /** Slices of rate limits and maxUses leased from the tree's counters (lease-scripts.ts), on the grant's slot. */
  #slices(): Slices {
    const grantKey = (levels: readonly string[]) => {
      const tree = grantTree(levels[0]!)!;
      return { key: this.#keys.grant(tree, levels[0]!), base: this.#keys.base(tree) };
    };
    return new Slices({
      rate: {
        lease: async (levels, scope, window, limit, want, now) => {
          const { key, base } = grantKey(levels);
          const [taken, cur] = await call(() =>
            this.#redis.prsRateLease(key, base, now, scope, window, limit, want, ...levels),
          );
          return [Number(taken), Number(cur)] as const;
        },
        giveBack: (levels, scope, cur, units) => {
          const { key, base } = grantKey(levels);
          void this.#redis.prsRateReturn(key, base, scope, cur, units, ...levels).catch(() => {});
        },
      },
      uses: {
        lease: async (levels, want) => {
          const { key, base } = grantKey(levels);
          return Number(await call(() => this.#redis.prsUsesLease(key, base, want, ...levels)));
        },
        giveBack: (levels, units) => {
          const { key, base } = grantKey(levels);
          void this.#redis.prsUsesReturn(key, base, units, ...levels).catch(() => {});
        },
      },
    });
  }
}

/**
 * What an allowed call's reply says a node may keep to serve the token itself, or undefined when
 * a limit of its chain is too near to lease. A chain with a maxUses is kept with `uses`, one with
 * a budget or maxConcurrent with `spend`: those are spent from leased slices.
 */
const localEntry = (
  reply: readonly string[],
  subject: Subject,
  notAfter: number,
  facts: { readonly expiresAt: number; readonly subjects: readonly RuleSubject[] },
): LocalEntry | undefined => {
  const [counted = "1", ancestors = ""] = field(AUTHORIZED, reply, "chain").split(";");
  if (counted === "1" || !subject.grantId || !subject.tokenId || facts.subjects.length === 0)
    return undefined;
  return {
    subject,
    tokenId: subject.tokenId,
    grants: [subject.grantId, ...(ancestors ? ancestors.split(",") : [])],
    scopes: new Set(facts.subjects[0]!.scopes),
    expiresAt: facts.expiresAt,
    notAfter,
    subjects: facts.subjects,
    uses: counted.includes("u"),
    spend: counted.includes("s"),
  };
};

/** Where an allowed call's reply carries the chain's facts (expiresAt, chain, then triples). */
const FACTS_AT = AUTHORIZED.indexOf("expiresAt");
