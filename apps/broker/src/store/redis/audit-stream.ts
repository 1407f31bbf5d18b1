import type { AuditEvent } from "@perishable/protocol";
import { auditMatches } from "../audit-filter.js";
import type { AuditLine, AuditQuery, AuditRead, AuditRecord } from "../types.js";
import { call, type ScriptedRedis } from "./client.js";

/** The audit trail as a bounded Redis Stream: appended a batch per script call, read by range with filters. */
export class AuditStream {
  readonly #redis: ScriptedRedis;
  readonly #key: string;
  readonly #maxLen: number;

  constructor(redis: ScriptedRedis, key: string, maxLen: number) {
    this.#redis = redis;
    this.#key = key;
    this.#maxLen = maxLen;
  }

  async append(lines: readonly AuditLine[]): Promise<void> {
    if (lines.length === 0) return;
    // One script call per batch: one command for the broker to send, whatever the batch size.
    await call(() => this.#redis.prsAuditAppend(this.#key, this.#maxLen, ...lines));
  }

  async read(query: AuditQuery): Promise<AuditRead> {
    const key = this.#key;
    const records: AuditRecord[] = [];
    // Filters are applied here; a page stops after scanning this many entries even if it is not full.
    const budget = Math.max(1_000, query.limit * 20);
    let scanned = 0;
    const chunk = Math.min(1_000, Math.max(100, query.limit * 2));
    if (query.after !== undefined || query.since !== undefined) {
      let cursor: string | null = query.after ?? null;
      let start = query.after !== undefined ? `(${query.after}` : `${query.since}-0`;
      while (records.length < query.limit && scanned < budget) {
        const entries = await call(() => this.#redis.xrange(key, start, "+", "COUNT", chunk));
        if (entries.length === 0) break;
        for (const [id, fields] of entries) {
          scanned += 1;
          cursor = id;
          const event = parseEvent(fields);
          if (event && auditMatches(event, query)) records.push({ id, event });
          if (records.length >= query.limit) break;
        }
        start = `(${cursor}`;
      }
      return { records, next: cursor };
    }
    // The most recent matching events, returned oldest first; `next` is the newest id seen,
    // so that polling with it as `after` continues from now.
    let end = "+";
    let newest: string | null = null;
    while (records.length < query.limit && scanned < budget) {
      const entries = await call(() => this.#redis.xrevrange(key, end, "-", "COUNT", chunk));
      if (entries.length === 0) break;
      newest ??= entries[0]![0];
      scanned += entries.length;
      for (const [id, fields] of entries) {
        const event = parseEvent(fields);
        if (event && auditMatches(event, query)) records.push({ id, event });
        if (records.length >= query.limit) break;
      }
      end = `(${entries.at(-1)![0]}`;
    }
    records.reverse();
    return { records, next: newest };
  }
}

const parseEvent = (fields: string[]): AuditEvent | undefined => {
  try {
    return JSON.parse(fields[1] ?? "") as AuditEvent;
  } catch {
    return undefined;
  }
};
