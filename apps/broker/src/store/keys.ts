import { SEGMENT } from "./redis/schema.js";

/**
 * The one place Redis key names are built. Every key of a lineage tree shares the hash tag
 * `{tree}`, so a tree lives in one Cluster slot and one Lua script can touch all of it.
 * The segments are written once, in `redis/schema.ts`; the Lua scripts get them as the table `K`.
 *
 *   <p>:{<tree>}:t:<hash>                token record (hash) — the keyed hash of the token, never the token
 *   <p>:{<tree>}:ti:<tokenId>            token id → token hash (for revoking one token by its id)
 *   <p>:{<tree>}:g:<grantId>             grant record (hash)
 *   <p>:{<tree>}:gt:<grantId>            the grant's token ids (set), for purges
 *   <p>:{<tree>}:tree                    grant id → parent id, for subtree walks
 *   <p>:{<tree>}:tomb                    set when a bulk revocation purged part of the tree
 *   <p>:{<tree>}:fl                      requests in flight of a tracked lineage (sorted set by lease end)
 *   <p>:{<tree>}:rl:<grantId>:<scope>:<window>   sliding-window counters
 *   <p>:audit                            the audit stream
 *   <p>:rules                            active revocation rules (hash id → JSON), channel of the same name
 *   <p>:nodes                            live broker nodes: id → lease end (sorted set); channels <p>:bus, <p>:ans:<id>
 *   <p>:expiries                         grant id → expiry of its newest token (sorted set), for `expired` events
 *   <p>:durable                          a mark written before each WAIT that confirms a revocation
 *   <p>:once:<value>                     a value used once (DPoP proof ids), until it expires
 */

export class RedisKeys {
  constructor(readonly prefix: string) {}

  base(tree: string): string {
    return `${this.prefix}:{${tree}}:`;
  }

  token(tree: string, hash: string): string {
    return `${this.base(tree)}${SEGMENT.token}${hash}`;
  }

  tokenId(tree: string, tokenId: string): string {
    return `${this.base(tree)}${SEGMENT.tokenId}${tokenId}`;
  }

  grant(tree: string, grantId: string): string {
    return `${this.base(tree)}${SEGMENT.grant}${grantId}`;
  }

  tree(tree: string): string {
    return `${this.base(tree)}${SEGMENT.tree}`;
  }

  flights(tree: string): string {
    return `${this.base(tree)}${SEGMENT.flights}`;
  }

  tokenSet(tree: string, grantId: string): string {
    return `${this.base(tree)}${SEGMENT.tokenSet}${grantId}`;
  }

  /** What SCAN matches to find every grant record, in any tree. */
  grantPattern(): string {
    return `${this.prefix}:{*}:${SEGMENT.grant}*`;
  }

  audit(): string {
    return `${this.prefix}:audit`;
  }

  rules(): string {
    return `${this.prefix}:rules`;
  }

  /** The node bus's channel: heartbeats, and questions every node answers (`redis/node-bus.ts`). */
  bus(): string {
    return `${this.prefix}:bus`;
  }

  /** The channel a node hears the answers to its questions on. */
  answers(nodeId: string): string {
    return `${this.prefix}:ans:${nodeId}`;
  }

  /** The live nodes: node id → lease end (sorted set, Redis's clock). */
  nodes(): string {
    return `${this.prefix}:nodes`;
  }

  /** Written before each WAIT that confirms a revocation (`redis/durable.ts`). */
  durable(): string {
    return `${this.prefix}:durable`;
  }

  expiries(): string {
    return `${this.prefix}:expiries`;
  }

  /** A value that may be used once cluster-wide within its time (a DPoP proof's key and jti). */
  once(value: string): string {
    return `${this.prefix}:once:${value}`;
  }
}
