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
  timer: NodeJS.Timeout | undefined;
}

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

/** setTimeout's longest delay; a grant ending later is cut by its revocation or the next check. */
const MAX_DELAY = 2 ** 31 - 1;

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

  /** Registers a live answer; call the returned function when it is over. */
  add(
    target: LiveTarget,
    notAfter: number,
    now: number,
    cut: (error: CutError) => void,
    maxMs?: number,
  ): () => void {
    const live: Live = { ...target, openedAt: now, cut, timer: undefined };
    // The grant's end, or the scope's max_connection_seconds when that comes first.
    const byScope = maxMs !== undefined && now + maxMs < notAfter;
    const left = byScope ? maxMs : notAfter - now;
    if (left <= MAX_DELAY) {
      const error: CutError = byScope
        ? {
            code: "token_expired",
            message: `the scope's max_connection_seconds (${maxMs / 1000}) have passed`,
          }
        : ENDED;
      const reason = byScope ? "max_connection" : "not_after";
      live.timer = setTimeout(() => this.#end(live, error, reason), Math.max(0, left));
      live.timer.unref();
    }
    add(this.#byGrant, target.grantId, live);
    add(this.#byToken, target.tokenId, live);
    return () => this.#remove(live);
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
    if (live.timer) clearTimeout(live.timer);
    drop(this.#byGrant, live.grantId, live);
    drop(this.#byToken, live.tokenId, live);
  }
}

const add = (index: Map<string, Set<Live>>, id: string, live: Live) => {
  const set = index.get(id);
  if (set) set.add(live);
  else index.set(id, new Set([live]));
};

const drop = (index: Map<string, Set<Live>>, id: string, live: Live) => {
  const set = index.get(id);
  if (!set) return;
  set.delete(live);
  if (set.size === 0) index.delete(id);
};
