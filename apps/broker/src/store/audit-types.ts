import type { AuditEvent, AuditEventType } from "@perishable/protocol";

/** One audit event as the JSON text the trail stores (no newline inside: JSON escapes them). */
export type AuditLine = string & { readonly __auditLine: true };

export interface AuditQuery {
  /** Cursor: only events after this id. */
  readonly after?: string;
  /** Only events at or after this time (ms). */
  readonly since?: number;
  readonly grantId?: string;
  readonly rootGrantId?: string;
  readonly agent?: string;
  readonly onBehalfOf?: string;
  readonly type?: AuditEventType;
  readonly limit: number;
}

export interface AuditRecord {
  readonly id: string;
  readonly event: AuditEvent;
}

export interface AuditRead {
  /** Oldest first. */
  readonly records: readonly AuditRecord[];
  /** Pass as `after` to continue with newer events. */
  readonly next: string | null;
}
