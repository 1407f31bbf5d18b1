import type { AuditEvent } from "@perishable/protocol";
import { auditMatches } from "../audit-filter.js";
import type { AuditLine, AuditQuery, AuditRead, AuditRecord } from "../types.js";

/** The audit trail in memory: a bounded list with increasing ids, read like the Redis stream. */
export class MemoryAuditTrail {
  readonly #maxLen: number;
  readonly #records: AuditRecord[] = [];
  #seq = 0;

  constructor(maxLen: number) {
    this.#maxLen = maxLen;
  }

  append(lines: readonly AuditLine[]): void {
    for (const line of lines)
      this.#records.push({ id: String(++this.#seq), event: JSON.parse(line) as AuditEvent });
    if (this.#records.length > this.#maxLen) this.#records.splice(0, this.#records.length - this.#maxLen);
  }

  read(query: AuditQuery): AuditRead {
    const matching = (r: AuditRecord) => auditMatches(r.event, query);
    if (query.after !== undefined || query.since !== undefined) {
      const after = query.after === undefined ? 0 : Number(query.after);
      const records: AuditRecord[] = [];
      let next: string | null = query.after ?? null;
      for (const record of this.#records) {
        if (Number(record.id) <= after) continue;
        next = record.id;
        if (matching(record)) records.push(record);
        if (records.length >= query.limit) break;
      }
      return { records, next };
    }
    const records = this.#records.filter(matching).slice(-query.limit);
    return { records, next: this.#records.at(-1)?.id ?? null };
  }

  /** Every event held, oldest first. */
  events(): readonly AuditEvent[] {
    return this.#records.map((r) => r.event);
  }
}

/** Values claimed once until they expire (DPoP proof ids): the memory twin of `SET NX PX`. */
export class OnceSet {
  readonly #until = new Map<string, number>();

  claim(value: string, ttlMs: number, now: number): boolean {
    if ((this.#until.get(value) ?? 0) > now) return false;
    if (this.#until.size >= 100_000)
      for (const [k, until] of this.#until) if (until <= now) this.#until.delete(k);
    this.#until.set(value, now + ttlMs);
    return true;
  }
}
