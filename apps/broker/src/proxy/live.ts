import type { Cut, LiveInfo } from "../store/types.js";
import type { CutError } from "./forward.js";

/** Why a live connection was cut (the label of `perishable_connections_cut_total`). */
export type CutReason = "revoked" | "not_after" | "max_connection" | "stale";

/** What a live connection is, as views and metrics show it (no token: its public id). */
export interface LiveTarget {
  readonly kind: LiveInfo["kind"];
  readonly grantId: string;
  readonly tokenId: string;
  readonly upstream: string;
  readonly path: string;
}

interface Live extends LiveTarget {
  readonly openedAt: number;
  readonly cut: (error: CutError) => void;
  /** The tick (of `TICK_MS`, on performance.now) it ends at, with why; undefined: no end here. */
  tick: number | undefined;
  end: { readonly error: CutError; readonly reason: CutReason } | undefined;
}

/** Ends (notAfter, max_connection_seconds) are checked this often: one timer for all, not one each. */
const TICK_MS = 100;

const REVOKED: CutError = {
  code: "token_revoked",
  message: "the token's grant, or one of its ancestors, was revoked while this answer was open",
};
const ENDED: CutError = {
  code: "token_expired",
  message: "the grant reached its end (notAfter) while this answer was open",
};
/** What a node that cannot hear revocations ends its live answers with. */
export const DEAF: CutError = {
  code: "store_unavailable",
  message: "this broker node cannot hear revocations: it ends what is live rather than let it run unchecked",
};

const ENDED_BY_GRANT = { error: ENDED, reason: "not_after" } as const;

/**
 * This node's live answers (in-flight requests, open streams, WebSockets), by grant and by token,
 * so that a revocation made on any node (`NodeWork.cut`: a grant with its subtree, one token, what
 * a bulk walk purged) cuts them at once, and a grant's notAfter cuts them when it comes. A token
 * that merely expires does not: the grant is what lives.
 */
export class LiveConnections {
  readonly #byGrant = new Map<string, Set<Live>>();
  readonly #byToken = new Map<string, Set<Live>>();
  readonly #onCut: (reason: CutReason) => void;

  constructor(onCut: (reason: CutReason) => void = () => {}) {
    this.#onCut = onCut;
  }

  /** Live answers by the tick they end at. */
  readonly #due = new Map<number, Set<Live>>();
  #ticker: NodeJS.Timeout | undefined;

  /** Registers a live answer; call the returned function when it is over. */
  add(
    target: LiveTarget,
    notAfter: number,
    now: number,
    cut: (error: CutError) => void,
    maxMs?: number,
  ): () => void {
    const live: Live = {
      kind: target.kind,
      grantId: target.grantId,
      tokenId: target.tokenId,
      upstream: target.upstream,
      path: target.path,
      openedAt: now,
      cut,
      tick: undefined,
      end: undefined,
    };
    // The grant's end, or the scope's max_connection_seconds when that comes first.
    const byScope = maxMs !== undefined && now + maxMs < notAfter;
    const left = byScope ? maxMs : notAfter - now;
    if (Number.isFinite(left)) {
      live.end = byScope
        ? {
            error: {
              code: "token_expired",
              message: `the scope's max_connection_seconds (${maxMs / 1000}) have passed`,
            },
            reason: "max_connection",
          }
        : ENDED_BY_GRANT;
      live.tick = Math.ceil((performance.now() + Math.max(0, left)) / TICK_MS);
      add(this.#due, live.tick, live);
      this.#ticker ??= setInterval(() => this.#tick(), TICK_MS).unref();
    }
    add(this.#byGrant, target.grantId, live);
    add(this.#byToken, target.tokenId, live);
    return () => this.#remove(live);
  }

  /** `add` for an allowed request's subject: nothing to track without a grant and token (→ a no-op end). */
  open(
    what: {
      kind: LiveTarget["kind"];
      subject: { grantId: string | null; tokenId: string | null };
      upstream: string;
      path: string;
    },
    notAfter: number,
    now: number,
    cut: (error: CutError) => void,
    maxMs?: number,
  ): () => void {
    const { grantId, tokenId } = what.subject;
    if (!grantId || !tokenId) return () => {};
    return this.add(
      { kind: what.kind, grantId, tokenId, upstream: what.upstream, path: what.path },
      notAfter,
      now,
      cut,
      maxMs,
    );
  }

  /** Ends what reached its end. */
  #tick(): void {
    const now = Math.floor(performance.now() / TICK_MS);
    for (const [tick, set] of this.#due) {
      if (tick > now) continue;
      for (const live of [...set]) this.#end(live, live.end!.error, live.end!.reason);
    }
    if (this.#due.size === 0 && this.#ticker) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  /** Cuts every live answer of the revoked grants and tokens. → how many. */
  cut(revoked: Cut, error: CutError = REVOKED): number {
    let n = 0;
    for (const [index, ids] of [
      [this.#byGrant, revoked.grants],
      [this.#byToken, revoked.tokens],
    ] as const) {
      for (const id of ids) {
        for (const live of [...(index.get(id) ?? [])]) {
          this.#end(live, error, "revoked");
          n += 1;
        }
      }
    }
    return n;
  }

  /** Cuts every live answer (this node can no longer hear revocations: fail closed). → how many. */
  cutAll(error: CutError): number {
    const all = this.#all();
    for (const live of all) this.#end(live, error, "stale");
    return all.length;
  }

  /** What is live now, as this node reports it. */
  list(node: string): LiveInfo[] {
    return this.#all().map(({ kind, grantId, tokenId, upstream, path, openedAt }) => ({
      node,
      kind,
      grantId,
      tokenId,
      upstream,
      path,
      openedAt,
    }));
  }

  /** Live answers on this node now. */
  get size(): number {
    let n = 0;
    for (const set of this.#byToken.values()) n += set.size;
    return n;
  }

  #all(): Live[] {
    return [...this.#byToken.values()].flatMap((set) => [...set]);
  }

  #end(live: Live, error: CutError, reason: CutReason): void {
    this.#remove(live);
    this.#onCut(reason);
    live.cut(error);
  }

  #remove(live: Live): void {
    if (live.tick !== undefined) drop(this.#due, live.tick, live);
    drop(this.#byGrant, live.grantId, live);
    drop(this.#byToken, live.tokenId, live);
  }
}

const add = <K>(index: Map<K, Set<Live>>, id: K, live: Live) => {
  const set = index.get(id);
  if (set) set.add(live);
  else index.set(id, new Set([live]));
};

const drop = <K>(index: Map<K, Set<Live>>, id: K, live: Live) => {
  const set = index.get(id);
  if (!set) return;
  set.delete(live);
  if (set.size === 0) index.delete(id);
};
