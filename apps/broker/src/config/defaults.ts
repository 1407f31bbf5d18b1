/**
 * The broker's operational defaults, in one place (ky's habit: the default beside the option's
 * doc). The ones an operator may need to change are config keys (named here); the rest are
 * internal pacing that the tests and benchmarks were measured with.
 */
export const DEFAULTS = Object.freeze({
  /** `listen.port`, and `perishable dev --port`. */
  port: 8420,
  redis: Object.freeze({
    /** `store.command_timeout` (s): a hung Redis fails closed after this, instead of hanging requests. */
    commandTimeoutMs: 2_000,
    /** `store.connect_timeout` (s): how long start waits for Redis. */
    connectTimeoutMs: 5_000,
    /** Rules are read again this often even without a pub/sub message (the safety net). */
    rulesReloadMs: 5_000,
    /** `store.node_lease` (s): a node that hears nothing for this long stops counting as live (node bus). */
    nodeLeaseMs: 1_000,
    /** `store.wait_timeout` (s): how long a revoking call waits for `store.wait_replicas` replicas. */
    waitTimeoutMs: 1_000,
  }),
  audit: Object.freeze({
    /** An emitted event waits at most this long before its batch is written. */
    flushMs: 50,
    /** Events per write (one script call). */
    batchSize: 500,
  }),
  /** Discovery and JWKS fetches give up after this long. */
  oidcTimeoutMs: 5_000,
  /**
   * Grants created this long after a bulk walk ends are not selected by its rule: the margin covers
   * clock differences between broker nodes, erring toward revoking.
   */
  revocationCutoffMarginMs: 1_000,
  budgets: Object.freeze({
    /** `budgets.lease` (s): an in-flight request's reservation and slot, unless renewed. */
    leaseMs: 30_000,
    /** Settlements per write. */
    settleBatch: 256,
  }),
  /** How often expired grants are claimed for their `expired` events. */
  expiryIntervalMs: 1_000,
});
