import type { AuditEvent } from "@perishable/protocol";
import type { AuditQuery } from "./types.js";

/** Whether an audit event passes a query's filters (both stores use this). */
export const auditMatches = (event: AuditEvent, query: AuditQuery): boolean =>
  (query.type === undefined || event.type === query.type) &&
  (query.agent === undefined || event.agent === query.agent) &&
  (query.grantId === undefined || event.grantId === query.grantId) &&
  (query.rootGrantId === undefined || event.rootGrantId === query.rootGrantId) &&
  (query.onBehalfOf === undefined || event.onBehalfOf === query.onBehalfOf) &&
  (query.since === undefined || Date.parse(event.at) >= query.since);
