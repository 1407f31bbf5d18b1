/**
 * The upstream's own credential must never reach an agent, whatever the upstream echoes: an error
 * that quotes the key it was sent, a debug header, a 2xx body. Every response body and header
 * value is scrubbed of the upstream's secrets on the way back.
 *
 * A secret is replaced by a mask of the same length, so `Content-Length` stays true and nothing
 * has to be held to recompute it: bodies keep streaming. A secret can straddle two chunks; only
 * a chunk's tail that could be the start of a secret is held back until the next chunk (an SSE
 * event ends in "\n\n", which starts no secret, so events are not delayed).
 */
export class Secrets {
  /** The byte forms, without any that contains another (masking the inner one masks both). */
  readonly bytes: readonly Buffer[];
  readonly #strings: readonly string[];
  readonly #masks: readonly Buffer[];
  readonly #longest: number;

  constructor(values: readonly string[]) {
    const unique = [...new Set(values.filter((v) => v.length >= 8))];
    const minimal = unique.filter((v) => !unique.some((other) => other !== v && v.includes(other)));
    this.#strings = minimal;
    this.bytes = minimal.map((v) => Buffer.from(v));
    this.#masks = this.bytes.map((b) => mask(b.length));
    this.#longest = Math.max(0, ...this.bytes.map((b) => b.length));
  }

  get empty(): boolean {
    return this.bytes.length === 0;
  }

  /** A header value with every secret masked (the same string when there is none). */
  header(value: string): string {
    let out = value;
    for (const secret of this.#strings) {
      if (out.includes(secret)) out = out.replaceAll(secret, mask(secret.length).toString("latin1"));
    }
    return out;
  }

  /** A scrubber for one response body. */
  stream(): Scrubber {
    return new Scrubber(this.bytes, this.#masks, this.#longest);
  }
}

const mask = (length: number): Buffer =>
  Buffer.from(length >= 10 ? `[redacted]${"*".repeat(length - 10)}` : "*".repeat(length));

export class Scrubber {
  readonly #secrets: readonly Buffer[];
  readonly #masks: readonly Buffer[];
  readonly #longest: number;
  #held: Buffer | undefined;

  constructor(secrets: readonly Buffer[], masks: readonly Buffer[], longest: number) {
    this.#secrets = secrets;
    this.#masks = masks;
    this.#longest = longest;
  }

  /** What of this chunk can go out now (possibly empty); the rest waits for the next chunk or `end`. */
  push(chunk: Buffer): Buffer {
    let data = this.#held ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = undefined;
    data = this.#mask(data);
    const keep = this.#tailThatMayStartASecret(data);
    if (keep === 0) return data;
    this.#held = Buffer.from(data.subarray(data.length - keep));
    return data.subarray(0, data.length - keep);
  }

  /** Whatever was held back: at the end of the body it cannot be the start of a secret any more. */
  end(): Buffer | undefined {
    const held = this.#held;
    this.#held = undefined;
    return held;
  }

  #mask(data: Buffer): Buffer {
    let copied = false;
    for (let s = 0; s < this.#secrets.length; s++) {
      const secret = this.#secrets[s]!;
      let at = data.indexOf(secret);
      if (at === -1) continue;
      if (!copied) {
        data = Buffer.from(data); // never write into a buffer undici may still own
        copied = true;
      }
      while (at !== -1) {
        this.#masks[s]!.copy(data, at);
        at = data.indexOf(secret, at + secret.length);
      }
    }
    return data;
  }

  /** The length of the longest suffix of `data` that is a proper prefix of a secret. */
  #tailThatMayStartASecret(data: Buffer): number {
    const from = Math.max(0, data.length - this.#longest + 1);
    for (let i = from; i < data.length; i++) {
      const rest = data.length - i;
      for (const secret of this.#secrets) {
        if (
          rest < secret.length &&
          data[i] === secret[0] &&
          data.compare(secret, 0, rest, i, data.length) === 0
        )
          return rest;
      }
    }
    return 0;
  }
}
