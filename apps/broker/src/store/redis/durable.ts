import { DEFAULTS } from "../../config/defaults.js";
import { UnreplicatedError } from "../types.js";
import { call, type RedisStoreOptions, type ScriptedRedis } from "./client.js";

/**
 * Revocations that a failover cannot lose (`store.wait_replicas`). Redis replicates
 * asynchronously: a revocation the master applied and a node was told of could be gone after
 * Sentinel promotes a replica that had not received it — and the revoked token would be good again.
 * So revoking writes go over a connection of their own, and before a revoking call answers, WAIT
 * on that connection has the master confirm that `replicas` replicas hold everything written on
 * it. WAIT blocks the connection it is sent on; on this one it holds up only other revocations,
 * never a proxied request.
 *
 * When the replicas do not confirm in time, the revocation is still in force (on the master, and
 * on every node, which were told in parallel); the call answers 503 so that the caller knows it is
 * not yet safe from a failover and asks again (revoking is idempotent).
 *
 * WAIT confirms the writes of the connection it is sent on, up to that connection's last write —
 * and a call asked again often writes nothing: the grant is already revoked (by the first try, on
 * this node or another, or over a connection since reconnected). So every confirmation writes a
 * mark first: WAIT then covers everything the master held at that moment, whoever wrote it, and an
 * "already revoked" answer is as safe from a failover as the first one would have been.
 */
/** How long a confirmation's mark stays (it is only ever written, never read). */
const MARK_TTL_MS = 60_000;

export class DurableWrites {
  /** Where revoking writes go: the connection of its own, or the command connection when no replica is waited for. */
  readonly redis: ScriptedRedis;
  readonly #replicas: number;
  readonly #timeoutMs: number;
  readonly #mark: string;

  /** `mark`: the key each confirmation writes before its WAIT. */
  constructor(
    redis: ScriptedRedis,
    mark: string,
    options: Pick<RedisStoreOptions, "waitReplicas" | "waitTimeoutMs">,
  ) {
    this.redis = redis;
    this.#mark = mark;
    this.#replicas = options.waitReplicas ?? 0;
    this.#timeoutMs = options.waitTimeoutMs ?? DEFAULTS.redis.waitTimeoutMs;
  }

  /** The connection of its own, to open and close with the store's ([] when revocations share the command connection). */
  get own(): ScriptedRedis[] {
    return this.#replicas > 0 ? [this.redis] : [];
  }

  /** Resolves once `replicas` replicas hold everything the master holds now; else UnreplicatedError. */
  async confirm(): Promise<void> {
    if (this.#replicas === 0) return;
    // One round trip: the mark and the WAIT go out together, in that order, on this one connection.
    const [, acked] = await call(() =>
      Promise.all([
        this.redis.set(this.#mark, Date.now(), "PX", MARK_TTL_MS),
        this.redis.call("WAIT", this.#replicas, this.#timeoutMs).then(Number),
      ]),
    );
    if (acked >= this.#replicas) return;
    throw new UnreplicatedError(
      `the revocation is in force, but ${acked} of ${this.#replicas} replicas confirmed it within ${this.#timeoutMs} ms (store.wait_replicas): ask again; revoking is idempotent`,
    );
  }

  /** `work` (telling the nodes), and the replicas' confirmation beside it: both are waited for, the first failure thrown. */
  async alongside<T>(work: Promise<T>): Promise<T> {
    const [done, confirmed] = await Promise.allSettled([work, this.confirm()]);
    if (done.status === "rejected") throw done.reason;
    if (confirmed.status === "rejected") throw confirmed.reason;
    return done.value;
  }
}
