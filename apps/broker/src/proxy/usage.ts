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
    if (!this.#sse) return fromBody(parse(head));
    const merged: { model?: string; usage?: Record<string, number> } = {};
    const tail = Buffer.concat(this.#tail).toString("utf8");
    for (const text of tail ? [head, tail] : [head]) {
      for (const line of text.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const found = fromEvent(parse(line.slice(5).trim()));
        if (found?.model && !merged.model) merged.model = found.model;
        if (found?.usage) merged.usage = { ...merged.usage, ...found.usage };
      }
    }
    return merged.model || merged.usage ? merged : undefined;
  }
}

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

const fromBody = (body: unknown): Usage | undefined => {
  if (!isObject(body)) return undefined;
  const model = typeof body.model === "string" ? body.model.slice(0, 200) : undefined;
  const usage = isObject(body.usage) ? counters(body.usage) : undefined;
  return model || usage ? { ...(model ? { model } : {}), ...(usage ? { usage } : {}) } : undefined;
};

/** OpenAI chunks carry `model` and (last) `usage`; Anthropic's message_start nests them in `message`. */
const fromEvent = (event: unknown): Usage | undefined => {
  if (!isObject(event)) return undefined;
  if (isObject(event.message)) return fromBody(event.message);
  return fromBody(event);
};
