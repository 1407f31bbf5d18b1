import type { RevocationRule } from "../policy/revocation.js";

/** What broker nodes ask each other and answer through the store (the node bus on Redis). */

/** What a revocation ended, pushed to every node so that it cuts the live connections of it. */
export interface Cut {
  readonly grants: readonly string[];
  readonly tokens: readonly string[];
}

/** A connection open on a node (an HTTP answer in flight, a stream, a WebSocket), as it reports it. */
export interface LiveInfo {
  readonly node: string;
  readonly kind: "http" | "websocket";
  readonly grantId: string;
  readonly tokenId: string;
  readonly upstream: string;
  readonly path: string;
  readonly openedAt: number;
}

/** Which live connections: those of these grants and their subtrees, or those a rule selects. */
export type LiveQuery = { readonly grants: readonly string[] } | { readonly rule: RevocationRule };

/** What a broker node does when another node (or it) asks. */
export interface NodeWork {
  /** Cuts the live connections of what a revocation ended → how many. */
  cut(cut: Cut): number;
  /** The live connections that match (at most a few hundred). */
  live(query: LiveQuery): Promise<LiveInfo[]>;
  /** This node may have missed pushes (it went stale): check what is live against the store. */
  resync(): Promise<void>;
}

/** Answers of every node that answered; `missing`: members whose lease ended before they did. */
export interface NodeReport<A> {
  readonly answers: readonly A[];
  readonly nodes: number;
  readonly missing: number;
}

/** A revocation's effect: grants newly revoked, live connections cut on every node. */
export interface Revoked {
  readonly grants: number;
  readonly connections: number;
}
