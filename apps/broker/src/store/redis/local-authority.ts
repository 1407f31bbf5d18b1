import { grantTree } from "@perishable/protocol";
import type { RuleSubject } from "../../policy/revocation.js";
import type { AuthorizeResult, Candidate, Cut, Lease, Subject } from "../types.js";
import type { Slices } from "./slices.js";
import type { SpendSlices, SpentFromSlice } from "./spend-slices.js";

/** Tokens a node serves itself at most (the oldest is forgotten first: it goes to Redis again). */
const ENTRIES = 100_000;

/** What a node knows of a token it may authorise itself: immutable facts of its chain. */
export interface LocalEntry {
  readonly subject: Subject;
  readonly tokenId: string;
  /** The grant, then its ancestors (nearest last): any of them revoked drops the entry. */
  readonly grants: readonly string[];
  readonly scopes: ReadonlySet<string>;
  readonly expiresAt: number;
  readonly notAfter: number;
  /** The chain's rule facts (agent, scopes, root, createdAt per grant). */
  readonly subjects: readonly RuleSubject[];
  /** The chain has a maxUses: each request spends a use from a leased slice. */
  readonly uses: boolean;
  /** The chain has a budget or maxConcurrent: each request reserves its worst case and a slot from a leased slice. */
  readonly spend: boolean;
}

/**
 * The node-local hot path: tokens whose chain counts no spend in Redis (no budget or
 * maxConcurrent anywhere in it) are authorised from what the first script call told about them,
 * without a round trip, while two things hold — the node is fresh on the node bus (it hears
 * every revocation before the revoking call answers) and no live rule selects the chain. A
 * maxUses in the chain, and a rate limit on the request's scope, are spent from slices leased
 * from Redis (`slices.ts`). Anything else goes to the script, as before.
 *
 * Revocations reach it as cuts (every grant and token a revocation ended) before the revoking call
 * answers; a cut, or a lapse, also bumps `epoch`, so that a script answer that was in flight
 * while one arrived is not cached (it may predate the revocation). docs/consistency.md.
 */
export class LocalAuthority {
  readonly #byHash = new Map<string, LocalEntry>();
  readonly #byGrant = new Map<string, Set<string>>();
  readonly #byToken = new Map<string, string>();
  #epoch = 0;
  readonly #slices: Slices | undefined;
  readonly #spendSlices: SpendSlices | undefined;

  /** Without `slices`, a rate-limited scope and a chain with a maxUses always go to the script; without `spend`, a tracked chain. */
  constructor(slices?: Slices, spend?: SpendSlices) {
    this.#slices = slices;
    this.#spendSlices = spend;
  }

  /** Changes whenever something may have become invalid; compare before caching a script answer. */
  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#byHash.size;
  }

  has(hash: string): boolean {
    return this.#byHash.has(hash);
  }

  /** Tokens seen whose chain counts in Redis: never served here, so their facts are not asked for again. */
  readonly #counted = new Set<string>();

  /** Whether the script need not bring this token's facts back (kept, or known to be counted). */
  known(hash: string): boolean {
    return this.#byHash.has(hash) || this.#counted.has(hash);
  }

  markCounted(hash: string): void {
    if (this.#counted.size >= ENTRIES) this.#counted.clear();
    this.#counted.add(hash);
  }

  /**
   * The request's answer, when this node can give it alone; undefined: ask the script. `ruled`
   * says whether a live rule could select the chain (then the script decides, and says why);
   * `fresh`, whether the node still hears every revocation (checked again after a lease).
   */
  authorize(
    hash: string,
    now: number,
    candidates: readonly Candidate[],
    ruled: (subjects: readonly RuleSubject[]) => boolean,
    fresh: () => boolean = () => true,
    lease?: Lease,
  ): AuthorizeResult | undefined | Promise<AuthorizeResult | undefined> {
    const entry = this.#byHash.get(hash);
    if (!entry || entry.expiresAt <= now || entry.notAfter <= now) return undefined;
    let chosen: Candidate | undefined;
    for (const c of candidates) {
      if (!entry.scopes.has(c.scope)) continue;
      if (!c.pass) return undefined; // the script words the denial
      chosen = c;
      break;
    }
    if (!chosen || ruled(entry.subjects)) return undefined;
    const allowed: AuthorizeResult = {
      ok: true,
      subject: entry.subject,
      scope: chosen.scope,
      flight: null,
      notAfter: entry.notAfter,
    };
    if (chosen.limit === 0 && !entry.uses && !entry.spend) return allowed;
    const slices = this.#slices;
    if (!slices || (entry.spend && (!this.#spendSlices || !lease))) return undefined;
    return this.#spend(slices, hash, entry, chosen, now, fresh, lease).then((spent) => {
      if (!spent) return undefined;
      if (spent === true) return allowed;
      const left = this.#spendSlices!.left(spent);
      return {
        ...allowed,
        flight: { tree: grantTree(entry.subject.grantId!)!, member: "", local: spent },
        ...(left ? { left } : {}),
      };
    });
  }

  /** Spends a use and a unit of the rate limit from slices; false: ask the script (nothing is kept spent). */
  /**
   * Spends a use, a unit of the rate limit and the request's worst case and slot from slices.
   * → true, or what it reserved of the lineage's spend; false: ask the script (nothing is kept
   * spent: what was taken goes back to the slices).
   */
  async #spend(
    slices: Slices,
    hash: string,
    entry: LocalEntry,
    chosen: Candidate,
    now: number,
    fresh: () => boolean,
    lease: Lease | undefined,
  ): Promise<boolean | SpentFromSlice> {
    const epoch = this.#epoch;
    if (entry.uses && !(await slices.use(entry.grants, now))) {
      this.#demote(hash, entry); // too few uses left to lease
      return false;
    }
    const rated =
      chosen.limit === 0 ||
      (await slices.rate(entry.grants, chosen.scope, chosen.windowMs, chosen.limit, now));
    const spent =
      rated && entry.spend
        ? await this.#spendSlices!.take(entry.grants, chosen.worst, now, lease!)
        : undefined;
    if (rated && (!entry.spend || spent) && this.#epoch === epoch && fresh()) return spent ?? true;
    // The script will count this request: what was taken is put back (a revoked lineage's slices are closed already).
    if (entry.uses) slices.unuse(entry.grants);
    spent?.close({ usd: 0, tokens: 0 });
    return false;
  }

  /** From now on the script counts this token's requests one by one (its limits are too near to lease). */
  #demote(hash: string, entry: LocalEntry): void {
    if (this.#byHash.get(hash) !== entry) return;
    this.#forget(hash);
    this.markCounted(hash);
  }

  /** Keeps what a script answer told about a token (only when `epoch` has not moved since it was sent). */
  put(hash: string, entry: LocalEntry): void {
    this.#forget(hash);
    if (this.#byHash.size >= ENTRIES) this.#forget(this.#byHash.keys().next().value!);
    this.#byHash.set(hash, entry);
    for (const id of entry.grants) {
      const set = this.#byGrant.get(id);
      if (set) set.add(hash);
      else this.#byGrant.set(id, new Set([hash]));
    }
    this.#byToken.set(entry.tokenId, hash);
  }

  /** Drops every entry whose chain holds a revoked grant, and the revoked tokens. */
  cut(cut: Cut): void {
    this.#epoch += 1;
    this.#slices?.drop(cut.grants);
    this.#spendSlices?.drop(cut.grants);
    for (const id of cut.grants) for (const hash of [...(this.#byGrant.get(id) ?? [])]) this.#forget(hash);
    for (const tokenId of cut.tokens) {
      const hash = this.#byToken.get(tokenId);
      if (hash) this.#forget(hash);
    }
  }

  /** Drops everything (this node may have missed revocations). */
  clear(): void {
    this.#epoch += 1;
    this.#slices?.clear();
    this.#spendSlices?.clear();
    this.#counted.clear();
    this.#byHash.clear();
    this.#byGrant.clear();
    this.#byToken.clear();
  }

  #forget(hash: string): void {
    const entry = this.#byHash.get(hash);
    if (!entry) return;
    this.#byHash.delete(hash);
    this.#byToken.delete(entry.tokenId);
    for (const id of entry.grants) {
      const set = this.#byGrant.get(id);
      set?.delete(hash);
      if (set?.size === 0) this.#byGrant.delete(id);
    }
  }
}
