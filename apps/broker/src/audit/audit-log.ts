import { createWriteStream, type WriteStream } from "node:fs";
import type { AuditDetails, AuditEventType } from "@perishable/protocol";
import { DEFAULTS } from "../config/defaults.js";
import type { AuditLine, Store, Subject } from "../store/types.js";
import { encodeAudit } from "./encode.js";

export { auditEvent } from "./encode.js";

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
 * The audit trail's writer. `record` only pushes an event's JSON text onto an array:
 * the proxy never waits for the trail. Batches go to the store (a bounded Redis Stream) and the optional JSONL file on a
 * short timer; while the store is down they are kept, up to `maxBuffer`, and retried.
 */
export class AuditLog {
  readonly #store: Store;
  readonly #file: WriteStream | undefined;
  readonly #maxBuffer: number;
  readonly #flushMs: number;
  readonly #batchSize: number;
  readonly #onError: (message: string, error: unknown) => void;
  #queue: AuditLine[] = [];
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

  /** Writes one event: its JSON text, encoded at once without building the event object. */
  record<T extends AuditEventType>(
    type: T,
    subject: Subject | null,
    requestId: string | null,
    at: number,
    details: AuditDetails<T>,
  ): void {
    if (this.#admits(type, subject?.grantId ?? null))
      this.#push(encodeAudit(type, subject, requestId, at, details));
  }

  #admits(type: AuditEventType, grantId: string | null): boolean {
    if (type === "denied" && grantId === null && !this.#allowAnonymous()) {
      this.#suppressed += 1;
      return false;
    }
    if (this.#queue.length >= this.#maxBuffer) {
      this.#dropped += 1;
      return false;
    }
    return true;
  }

  #push(line: AuditLine): void {
    this.#queue.push(line);
    if (!this.#timer && !this.#closed) {
      this.#timer = setTimeout(() => void this.#run(false), this.#flushMs);
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

  /** Writes everything queued; one flush at a time. Failed batches stay queued for the next one. */
  async flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    return this.#run(true);
  }

  /**
   * One drain. On the timer (`whole` false) it writes what came since the last one and leaves a
   * partial batch for the next tick: under load the trail goes out in batches of `flushMs`
   * worth of events rather than of one round trip's worth.
   */
  #run(whole: boolean): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#flushing) return this.#flushing;
    this.#flushing = this.#drain(whole)
      .catch(() => false)
      .then((written) => {
        this.#flushing = undefined;
        if (this.#queue.length > 0 && !this.#closed && !this.#timer) {
          this.#timer = setTimeout(() => void this.#run(false), written ? this.#flushMs : this.#flushMs * 10);
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

  /** False when the store refused a batch. */
  async #drain(whole: boolean): Promise<boolean> {
    let first = true;
    while (this.#queue.length > 0 && (whole || first || this.#queue.length >= this.#batchSize)) {
      first = false;
      this.#writeFile();
      const batch = this.#queue.slice(0, this.#batchSize);
      try {
        await this.#store.appendAudit(batch);
      } catch (error) {
        this.#report("cannot write the audit trail to the store; events are kept and retried", error);
        return false;
      }
      this.#queue.splice(0, batch.length);
      if (this.#file) this.#inFile -= batch.length;
      this.#written += batch.length;
    }
    return true;
  }

  /** The file gets each event once, in order, even while the store is failing. */
  #writeFile(): void {
    if (!this.#file || this.#inFile >= this.#queue.length) return;
    let lines = "";
    for (let i = this.#inFile; i < this.#queue.length; i++) lines += `${this.#queue[i]}\n`;
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
