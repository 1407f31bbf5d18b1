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
    const head = Buffer.concat(this.#head).toString("utf8");
    const tail = this.#tail.length > 0 ? Buffer.concat(this.#tail).toString("utf8") : "";
    return extract(tail ? `${head}\n${tail}` : head);
  }
}

const MODEL = /"model"\s*:\s*"([^"\\]{1,200})"/;
const USAGE = /"usage"\s*:\s*\{/g;

/**
 * Model and usage without parsing the whole answer: the first `"model": "…"` (a key: inside a JSON
 * string its quotes would be escaped), and every `"usage": {…}` object, parsed on its own and
 * merged in order (Anthropic's message_start has the input tokens, message_delta the output).
 */
export const extract = (text: string): Usage | undefined => {
  const model = MODEL.exec(text)?.[1];
  let usage: Record<string, number> | undefined;
  USAGE.lastIndex = 0;
  for (let match = USAGE.exec(text); match; match = USAGE.exec(text)) {
    const start = match.index + match[0].length - 1;
    let depth = 0;
    let end = -1;
    for (let i = start; i < text.length && i < start + 4096; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x7b) depth += 1;
      else if (c === 0x7d && --depth === 0) {
        end = i + 1;
        break;
      }
    }
    if (end === -1) continue;
    const object = parse(text.slice(start, end));
    if (isObject(object)) usage = { ...usage, ...counters(object) };
  }
  return model || usage ? { ...(model ? { model } : {}), ...(usage ? { usage } : {}) } : undefined;
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
    if (typeof value === "number" && Number.isFinite(value)) out[`${prefix}${key}`] = value;
    else if (isObject(value) && prefix === "") counters(value, `${key}.`, out);
  }
  return out;
};
