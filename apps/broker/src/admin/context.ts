import type { AuditLog } from "../audit/audit-log.js";
import type { BrokerConfig } from "../config/types.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Store } from "../store/types.js";

/** What the admin use cases need. */
export interface AdminContext {
  readonly config: BrokerConfig;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** See DEFAULTS.revocationCutoffMarginMs; a seam for tests. */
  readonly cutoffMarginMs: number;
}

/** Who is acting: an admin's configured name (never its key). */
export interface Actor {
  readonly name: string;
}
