import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname } from "node:path";
import { type Rereadable, reread } from "../config/interpolate.js";
import type { UpstreamConfig } from "../config/types.js";
import { Secrets } from "./scrub.js";

/** What a rotation did, for the log, the metric and the audit trail (never the key). */
export type KeyEvent =
  | { readonly kind: "rotated"; readonly upstream: string }
  | { readonly kind: "refused"; readonly upstream: string; readonly why: string };

/** An answer is scrubbed of the auth value and of the bare key after a scheme. */
const forms = (value: string | undefined): string[] => {
  const bare = value?.replace(/^(Bearer|Basic|Token)\s+/i, "");
  return value && bare ? [value, bare] : [];
};

const stamp = (file: string): string => {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return "missing";
  }
};

/**
 * The upstreams' auth values as they are now. A value written with `${file:…}` is read again when
 * its file changes — watched (Kubernetes swaps a mounted secret's directory link, Vault Agent
 * rewrites the file) and polled as a fallback — and on `reload()` (SIGHUP). A new key takes over
 * for requests that start after it; a request in flight keeps the value it was sent with. A read
 * that gives an empty or unreadable value keeps the old key and is reported. Answers are scrubbed
 * of the current and the previous key (an answer in flight may still echo the old one).
 */
export class UpstreamKeys {
  readonly #sources = new Map<string, Rereadable>();
  readonly #values = new Map<string, string | undefined>();
  readonly #secrets = new Map<string, Secrets>();
  readonly #stale = new Map<string, string>();
  readonly #stamps = new Map<string, string>();
  readonly #onEvent: (event: KeyEvent) => void;
  readonly #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;

  constructor(upstreams: Iterable<UpstreamConfig>, onEvent: (event: KeyEvent) => void) {
    this.#onEvent = onEvent;
    for (const u of upstreams) {
      const value = u.auth?.value.reveal();
      this.#values.set(u.name, value);
      this.#secrets.set(u.name, new Secrets(forms(value)));
      if (u.auth?.source) this.#sources.set(u.name, u.auth.source);
    }
  }

  /** The auth value to send now. */
  value(upstream: string): string | undefined {
    return this.#values.get(upstream);
  }

  /** What answers of this upstream are scrubbed of. */
  secrets(upstream: string): Secrets {
    return this.#secrets.get(upstream) ?? new Secrets([]);
  }

  /** Upstreams whose file last gave an unusable value (the old key still serves), with why. */
  get stale(): ReadonlyMap<string, string> {
    return this.#stale;
  }

  /** Starts watching the files (and polling every `pollMs` as a fallback). */
  start(pollMs = 2_000): void {
    const files = new Set([...this.#sources.values()].flatMap((s) => s.files));
    if (files.size === 0) return;
    for (const file of files) this.#stamps.set(file, stamp(file));
    for (const dir of new Set([...files].map((f) => dirname(f)))) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#check());
        watcher.on("error", () => {}); // the poll below still runs
        this.#watchers.push(watcher);
      } catch {
        // a directory that cannot be watched: the poll covers it
      }
    }
    this.#poll = setInterval(() => this.#check(), pollMs);
    this.#poll.unref();
  }

  stop(): void {
    if (this.#poll) clearInterval(this.#poll);
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }

  /** Reads every file-backed value again now (SIGHUP). */
  reload(): void {
    for (const name of this.#sources.keys()) this.#read(name);
  }

  /** Reads again the values whose files changed since last looked at. */
  #check(): void {
    for (const [name, source] of this.#sources) {
      let changed = false;
      for (const file of source.files) {
        const now = stamp(file);
        if (now !== this.#stamps.get(file)) changed = true;
        this.#stamps.set(file, now);
      }
      if (changed) this.#read(name);
    }
  }

  #read(name: string): void {
    const source = this.#sources.get(name)!;
    const { value, problems } = reread(source);
    const previous = this.#values.get(name);
    const bare = value.replace(/^(Bearer|Basic|Token)\s+/i, "").trim();
    if (problems.length > 0 || bare === "") {
      const why = problems[0]?.message ?? "the file gave an empty key";
      this.#stale.set(name, why);
      this.#onEvent({ kind: "refused", upstream: name, why });
      return;
    }
    this.#stale.delete(name);
    if (value === previous) return;
    this.#values.set(name, value);
    this.#secrets.set(name, new Secrets([...forms(value), ...forms(previous)]));
    this.#onEvent({ kind: "rotated", upstream: name });
  }
}
