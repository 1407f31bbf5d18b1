import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import {
  GRANT_ID_PREFIX,
  ID_ALPHABET,
  ID_BODY_LENGTH,
  TOKEN_ID_PREFIX,
  TOKEN_PREFIX,
  TREE_LENGTH,
} from "@perishable/protocol";
import type { Secret } from "../config/secret.js";

/** `n` characters of the id alphabet; 32 divides 256, so `byte & 31` is unbiased. */
const randomChars = (n: number): string => {
  const bytes = randomBytes(n);
  let out = "";
  for (let i = 0; i < n; i++) out += ID_ALPHABET[bytes[i]! & 31];
  return out;
};

/** A root grant id: 26 random characters, the first 10 of which name the new lineage tree. */
export const newRootGrantId = (): string => GRANT_ID_PREFIX + randomChars(ID_BODY_LENGTH);

/** A grant or token id inside an existing tree: the tree, then 16 random characters (80 bits). */
export const newGrantId = (tree: string): string =>
  GRANT_ID_PREFIX + tree + randomChars(ID_BODY_LENGTH - TREE_LENGTH);
export const newTokenId = (tree: string): string =>
  TOKEN_ID_PREFIX + tree + randomChars(ID_BODY_LENGTH - TREE_LENGTH);

/** A bearer token: prefix, the tree (routing, not secret), 256 random bits. */
export const newToken = (tree: string): string =>
  `${TOKEN_PREFIX}${tree}_${randomBytes(32).toString("base64url")}`;

/** A fresh random key for `perishable dev` and docs: `<prefix>_` + 256 bits. */
export const newKey = (prefix: string): string => `${prefix}_${randomBytes(32).toString("base64url")}`;

/**
 * Tokens are stored under a keyed hash (HMAC-SHA256 with the broker secret): a leak of the
 * store's keys and values yields nothing that can be presented, and without the secret nothing
 * that can even be tested offline against a guessed token.
 */
const RECENT_HASHES = 4096;

export class TokenHasher {
  readonly #key: Buffer;

  constructor(secret: Secret) {
    this.#key = Buffer.from(secret.reveal(), "utf8");
  }

  /**
   * Agents present the same token for many calls: the hashes of recent tokens are kept in a
   * small bounded map (in this process's memory only, like the token in the request itself).
   */
  readonly #recent = new Map<string, string>();

  /** A MAC of parts under this broker's secret, for values the broker hands out and must recognise. */
  mac(purpose: string, ...parts: readonly string[]): string {
    return createHmac("sha256", this.#key)
      .update([purpose, ...parts].join("\0"))
      .digest("base64url");
  }

  /**
   * The keyed hash a token is stored under. A DPoP-bound token's takes the key's thumbprint too
   * (`\0` cannot occur in either): only a request that proved that key computes it.
   */
  hash(token: string, jkt?: string): string {
    const input = jkt === undefined ? token : `${token}\0${jkt}`;
    const known = this.#recent.get(input);
    if (known !== undefined) return known;
    const hash = createHmac("sha256", this.#key).update(input).digest("base64url");
    if (this.#recent.size >= RECENT_HASHES) this.#recent.delete(this.#recent.keys().next().value!);
    this.#recent.set(input, hash);
    return hash;
  }
}

/**
 * Finds which configured key (issuer or admin) a presented credential is, in time that does not
 * depend on how much of any key matched: every candidate is compared, with timingSafeEqual, as
 * fixed-length digests (so differing lengths leak nothing either), and the loop never exits early.
 */
export class KeyMatcher<T> {
  readonly #entries: ReadonlyArray<{ readonly digest: Buffer; readonly value: T }>;

  constructor(entries: Iterable<readonly [Secret, T]>) {
    this.#entries = [...entries].map(([secret, value]) => ({ digest: digest(secret.reveal()), value }));
  }

  match(presented: string): T | undefined {
    const candidate = digest(presented);
    let found: T | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, candidate) && found === undefined) found = entry.value;
    }
    return found;
  }
}

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();
