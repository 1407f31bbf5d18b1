import {
  type CompactJWSHeaderParameters,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from "jose";

export interface RemoteKeysOptions {
  /** After any fetch, an unknown key id waits this long before it may cause another. */
  readonly cooldownMs: number;
  /** At most this many fetches caused by unknown key ids in any 60 s. */
  readonly maxFetchesPerMinute: number;
  /** Keys are fetched again once they are this old. */
  readonly cacheMs: number;
  readonly timeoutMs: number;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

const MINUTE = 60_000;

/**
 * An identity provider's JWKS, as jose's `createRemoteJWKSet` keeps it (the model: one fetch in
 * flight at a time, every caller waits on it, a timeout on each), with the two properties an
 * operator needs together: a key rotation the provider did not pre-publish is picked up at once
 * (an unknown `kid` causes a fetch after a short cooldown), and a flood of made-up `kid`s cannot
 * hammer the provider (those fetches are capped per minute; past the cap an unknown `kid` is
 * simply unknown until the window moves on).
 */
export class RemoteKeys {
  readonly #url: URL;
  readonly #options: RemoteKeysOptions;
  readonly #now: () => number;
  readonly #fetch: typeof fetch;
  #local: JWTVerifyGetKey | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<void> | undefined;
  /** When the fetches caused by unknown key ids in the last minute started. */
  #recent: number[] = [];
  #count = 0;

  constructor(url: URL, options: RemoteKeysOptions) {
    this.#url = url;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetch ?? fetch;
  }

  /** jose's key resolver shape, for `jwtVerify(jwt, keys.getKey)`. */
  readonly getKey = async (header: CompactJWSHeaderParameters, token: FlattenedJWSInput) => {
    if (!this.#local || this.#now() - this.#fetchedAt >= this.#options.cacheMs) await this.#reload();
    try {
      return await this.#local!(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || !this.#mayRefetch()) throw error;
      await this.#reload();
      return this.#local!(header, token);
    }
  };

  /** How many fetches this resolver has made. */
  get fetches(): number {
    return this.#count;
  }

  #mayRefetch(): boolean {
    if (this.#pending) return true; // join the fetch in flight: it costs nothing more
    const now = this.#now();
    if (now - this.#fetchedAt < this.#options.cooldownMs) return false;
    this.#recent = this.#recent.filter((at) => now - at < MINUTE);
    if (this.#recent.length >= this.#options.maxFetchesPerMinute) return false;
    this.#recent.push(now);
    return true;
  }

  #reload(): Promise<void> {
    this.#pending ??= this.#load().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #load(): Promise<void> {
    this.#count += 1;
    let response: Response;
    try {
      response = await this.#fetch(this.#url, {
        headers: { accept: "application/json, application/jwk-set+json" },
        redirect: "manual",
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
    } catch (error) {
      if (error instanceof Error && error.name === "TimeoutError") throw new errors.JWKSTimeout();
      throw error;
    } finally {
      // A failed fetch counts for the cooldown too: a provider that is down is not asked per token.
      this.#fetchedAt = this.#now();
    }
    if (response.status !== 200) throw new JwksFetchError(`the JWKS answered ${response.status}`);
    const jwks = (await response.json().catch(() => undefined)) as JSONWebKeySet | undefined;
    // createLocalJWKSet checks the shape (JWKSInvalid when it is not a key set).
    this.#local = createLocalJWKSet(jwks as JSONWebKeySet);
  }
}

/** The JWKS could not be read (the provider answered, but not with keys). */
export class JwksFetchError extends Error {}
