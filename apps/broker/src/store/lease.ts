import { DEFAULTS } from "../config/defaults.js";
import type { Lease } from "./types.js";

let leases = 0;
/** A lease for a caller that names none: a process-unique id, the default lease length. */
export const defaultLease = (now: number): Lease => ({
  id: `${process.pid.toString(36)}.${(leases++).toString(36)}`,
  until: now + DEFAULTS.budgets.leaseMs,
});
