/** What an LLM response says about itself, for the `used` audit event. */
export interface Usage {
  readonly model?: string;
  readonly usage?: Record<string, number>;
}

const WINDOW = 16 * 1024;
const MAX_JSON = 1024 * 1024;

/**
 * Watches a response go by without holding it up: keeps the first and the last 16 KiB of an SSE
 * stream (model and usage live in the first and last events: OpenAI's final usage chunk,
 * Anthropic's message_start and message_delta) and up to 1 MiB of a JSON body, then reads the
 * model and token usage from them at the end. Partial events at the window edges are skipped.
 */
export class UsageSniffer {
  readonly #sse: boolean;
  readonly #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  #overflow = false;

  private constructor(sse: boolean) {
    this.#sse = sse;
  }

  /** A sniffer for this content type, or undefined when there is nothing to read in it. */
  static for(
    contentType: string | string[] | undefined,
    contentEncoding: string | string[] | undefined,
  ): UsageSniffer | undefined {
    if (typeof contentType !== "string" || (contentEncoding && contentEncoding !== "identity"))
      return undefined;
    if (contentType.startsWith("text/event-stream")) return new UsageSniffer(true);
    if (contentType.startsWith("application/json")) return new UsageSniffer(false);
    return undefined;
  }

  feed(chunk: Buffer): void {
    if (this.#overflow) return;
    if (this.#headBytes < (this.#sse ? WINDOW : MAX_JSON)) {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      return;
    }
    if (!this.#sse) {
      this.#overflow = true;
      return;
    }
    this.#tail.push(chunk);
    this.#tailBytes += chunk.length;
    while (this.#tail.length > 1 && this.#tailBytes - this.#tail[0]!.length >= WINDOW) {
      this.#tailBytes -= this.#tail.shift()!.length;
    }
  }

  result(): Usage | undefined {
    if (this.#overflow) return undefined;
    const head = (this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head)).toString("utf8");
    const tail = this.#tail.length > 0 ? Buffer.concat(this.#tail).toString("utf8") : "";
    return extract(tail ? `${head}\n${tail}` : head);
  }
}

const MODEL_KEY = '"model"';
const USAGE_KEY = '"usage"';
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN = 0x7b;
const CLOSE = 0x7d;

/** Skips JSON whitespace from `i`; returns the next index that is not. */
const skipSpace = (text: string, i: number): number => {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i += 1;
  }
};

/** Where the value of the key found at `at` starts (after `"key"`, spaces, `:`, spaces), or -1. */
const valueAt = (text: string, at: number, key: string): number => {
  const colon = skipSpace(text, at + key.length);
  return text.charCodeAt(colon) === COLON ? skipSpace(text, colon + 1) : -1;
};

/** The first `"model": "…"` with a plain string value (1–200 characters, no escapes). */
const readModel = (text: string): string | undefined => {
  for (let at = text.indexOf(MODEL_KEY); at !== -1; at = text.indexOf(MODEL_KEY, at + MODEL_KEY.length)) {
    const start = valueAt(text, at, MODEL_KEY);
    if (start === -1 || text.charCodeAt(start) !== QUOTE) continue;
    for (let i = start + 1; i < text.length && i <= start + 201; i++) {
      const c = text.charCodeAt(i);
      if (c === BACKSLASH) break;
      if (c === QUOTE) {
        if (i > start + 1) return text.slice(start + 1, i);
        break;
      }
    }
  }
  return undefined;
};

/**
 * Model and usage without parsing the whole answer: the first `"model": "…"` (a key: inside a JSON
 * string its quotes would be escaped), and every `"usage": {…}` object, parsed on its own and
 * merged in order (Anthropic's message_start has the input tokens, message_delta the output).
 * Plain string scans, no regular expressions and no intermediate objects: this runs on every
 * proxied answer.
 */
export const extract = (text: string): Usage | undefined => {
  const model = readModel(text);
  let usage: Record<string, number> | undefined;
  for (let at = text.indexOf(USAGE_KEY); at !== -1; at = text.indexOf(USAGE_KEY, at + USAGE_KEY.length)) {
    const start = valueAt(text, at, USAGE_KEY);
    if (start === -1 || text.charCodeAt(start) !== OPEN) continue;
    let depth = 0;
    let end = -1;
    for (let i = start; i < text.length && i < start + 4096; i++) {
      const c = text.charCodeAt(i);
      if (c === OPEN) depth += 1;
      else if (c === CLOSE && --depth === 0) {
        end = i + 1;
        break;
      }
    }
    if (end === -1) continue;
    const object = parse(text.slice(start, end));
    if (isObject(object)) usage = counters(object, "", usage ?? {});
  }
  if (model === undefined && usage === undefined) return undefined;
  const found: { model?: string; usage?: Record<string, number> } = {};
  if (model !== undefined) found.model = model;
  if (usage !== undefined) found.usage = usage;
  return found;
};

const parse = (text: string): unknown => {
  if (!text || text === "[DONE]") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/** The numeric counters of a usage object, nested ones flattened (`prompt_tokens_details.cached_tokens`). */
const counters = (usage: unknown, prefix = "", out: Record<string, number> = {}): Record<string, number> => {
  if (!isObject(usage)) return out;
  for (const [key, value] of Object.entries(usage)) {
    if (typeof value === "number" && Number.isFinite(value))
      out[prefix === "" ? key : `${prefix}${key}`] = value;
    else if (isObject(value) && prefix === "") counters(value, `${key}.`, out);
  }
  return out;
};
