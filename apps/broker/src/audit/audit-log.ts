import { createWriteStream, type WriteStream } from "node:fs";
import {
  type AuditDetails,
  type AuditEvent,
  type AuditEventOf,
  type AuditEventType,
  callerText,
} from "@perishable/protocol";
import { DEFAULTS } from "../config/defaults.js";
import type { Store, Subject } from "../store/types.js";

export interface AuditLogOptions {
  readonly store: Store;
  /** Also append one JSON line per event to this file. */
  readonly file?: string | undefined;
  /** Events held while the store is slow or down; past this they are dropped and counted. */
  readonly maxBuffer: number;
  readonly flushMs?: number;
  readonly batchSize?: number;
  readonly onError?: (message: string, error: unknown) => void;
  /**
   * Refusals of callers with no known credential (no grant to attribute them to) written per
   * second at most; the rest are only counted (`stats.suppressed`, a metric). Without it an
   * unauthenticated flood pushes real events out of the bounded stream.
   */
  readonly anonymousPerSecond?: number;
  readonly now?: () => number;
}

export interface AuditStats {
  readonly pending: number;
  readonly written: number;
  readonly dropped: number;
  readonly suppressed: number;
}

/**
 * The audit trail's writer. `emit` only pushes onto an array: the proxy never waits for the
 * trail. Batches go to the store (a bounded Redis Stream) and the optional JSONL file on a
 * short timer; while the store is down they are kept, up to `maxBuffer`, and retried.
 */
export class AuditLog {
  readonly #store: Store;
  readonly #file: WriteStream | undefined;
  readonly #maxBuffer: number;
  readonly #flushMs: number;
  readonly #batchSize: number;
  readonly #onError: (message: string, error: unknown) => void;
  #queue: AuditEvent[] = [];
  /** How many events at the head of the queue are already in the file. */
  #inFile = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #written = 0;
  #dropped = 0;
  #closed = false;
  #lastErrorAt = 0;
  readonly #anonymousPerSecond: number;
  readonly #now: () => number;
  #anonymousSecond = 0;
  #anonymousInSecond = 0;
  #suppressed = 0;

  constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#maxBuffer = options.maxBuffer;
    this.#flushMs = options.flushMs ?? DEFAULTS.audit.flushMs;
    this.#batchSize = options.batchSize ?? DEFAULTS.audit.batchSize;
    this.#onError = options.onError ?? (() => {});
    this.#anonymousPerSecond = options.anonymousPerSecond ?? 20;
    this.#now = options.now ?? Date.now;
    if (options.file) {
      this.#file = createWriteStream(options.file, { flags: "a", mode: 0o600 });
      this.#file.on("error", (error) => this.#report("cannot write the audit file", error));
    }
  }

  emit(event: AuditEvent): void {
    if (event.type === "denied" && event.grantId === null && !this.#allowAnonymous()) {
      this.#suppressed += 1;
      return;
    }
    if (this.#queue.length >= this.#maxBuffer) {
      this.#dropped += 1;
      return;
    }
    this.#queue.push(event);
    if (!this.#timer && !this.#closed) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  get stats(): AuditStats {
    return {
      pending: this.#queue.length,
      written: this.#written,
      dropped: this.#dropped,
      suppressed: this.#suppressed,
    };
  }

  /** Writes what is queued; one flush at a time. Failed batches stay queued for the next one. */
  async flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#flushing) return this.#flushing;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0 && !this.#closed && !this.#timer) {
        this.#timer = setTimeout(() => void this.flush(), this.#flushMs * 10);
        this.#timer.unref();
      }
    });
    return this.#flushing;
  }

  #allowAnonymous(): boolean {
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#anonymousSecond) {
      this.#anonymousSecond = second;
      this.#anonymousInSecond = 0;
    }
    this.#anonymousInSecond += 1;
    return this.#anonymousInSecond <= this.#anonymousPerSecond;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    this.#writeFile();
    if (this.#file) await new Promise<void>((resolve) => this.#file!.end(resolve));
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      this.#writeFile();
      const batch = this.#queue.slice(0, this.#batchSize);
      try {
        await this.#store.appendAudit(batch);
      } catch (error) {
        this.#report("cannot write the audit trail to the store; events are kept and retried", error);
        return;
      }
      this.#queue.splice(0, batch.length);
      if (this.#file) this.#inFile -= batch.length;
      this.#written += batch.length;
    }
  }

  /** The file gets each event once, in order, even while the store is failing. */
  #writeFile(): void {
    if (!this.#file || this.#inFile >= this.#queue.length) return;
    let lines = "";
    for (let i = this.#inFile; i < this.#queue.length; i++) lines += `${JSON.stringify(this.#queue[i])}\n`;
    this.#file.write(lines);
    this.#inFile = this.#queue.length;
  }

  #report(message: string, error: unknown): void {
    const now = Date.now();
    if (now - this.#lastErrorAt < 10_000) return; // at most one line per 10 s while it lasts
    this.#lastErrorAt = now;
    this.#onError(message, error);
  }
}

/**
 * The fields every event carries, from what the store told about the subject. Every string of
 * `details` (rules, paths, upstream and model names: much of it caller-supplied) goes through
 * `callerText`: the one choke point between what a caller sent and what the trail stores.
 */
/**
 * `callerText` of the short strings events carry again and again (upstream and scope names,
 * methods, paths, models): a pure function, so its answers are kept — two regular expressions
 * over every string of every event were one of the costs of a proxied request. Only strings it
 * leaves as they are: one that held a credential is never kept, not even as a key.
 */
const safeTexts = new Map<string, string>();
const safeText = (value: string): string => {
  if (value.length > 128) return callerText(value);
  let safe = safeTexts.get(value);
  if (safe === undefined) {
    safe = callerText(value);
    if (safe !== value) return safe;
    if (safeTexts.size >= 4_096) safeTexts.clear();
    safeTexts.set(value, safe);
  }
  return safe;
};

export const auditEvent = <T extends AuditEventType>(
  type: T,
  subject: Subject | null,
  requestId: string | null,
  at: number,
  details: AuditDetails<T>,
): AuditEventOf<T> => {
  const event: Record<string, unknown> = {
    at: new Date(at).toISOString(),
    type,
    requestId,
    grantId: subject?.grantId ?? null,
    tokenId: subject?.tokenId ?? null,
    rootGrantId: subject?.rootGrantId ?? null,
    parentGrantId: subject?.parentGrantId ?? null,
    agent: subject?.agent ?? null,
  };
  for (const [key, value] of Object.entries(details)) {
    event[key] = typeof value === "string" ? safeText(value) : value;
  }
  const { identity } = details as { identity?: { issuer: string; subject: string } };
  if (identity)
    event.identity = { issuer: callerText(identity.issuer), subject: callerText(identity.subject) };
  return event as AuditEventOf<T>;
};
