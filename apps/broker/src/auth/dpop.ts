import {
  constants,
  createHash,
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
  verify as verifySignature,
} from "node:crypto";
import type { IncomingMessage } from "node:http";
import { calculateJwkThumbprint, decodeProtectedHeader, type JWK, type JWTPayload } from "jose";
import { ASYMMETRIC_ALGORITHMS } from "../config/schema.js";
import { BrokerError } from "../errors.js";

/**
 * DPoP proofs (RFC 9449): a JWT the client signs for each request with the private key its grant
 * is bound to. The proof names the method and URL (`htm`, `htu`), when it was made (`iat`), a
 * value never used twice (`jti`) and, with a token, the token's hash (`ath`). What a valid proof
 * yields is its key's thumbprint (`jkt`): the store finds a bound token only under that.
 */
const ALGORITHMS: readonly string[] = ASYMMETRIC_ALGORITHMS;
const ALGS = ALGORITHMS.join(" ");
/** The challenge every refusal about a proof carries (RFC 9449 §7.1). */
export const dpopChallenge = (error: string, description: string): Record<string, string> => ({
  "www-authenticate": `DPoP error="${error}", error_description="${description}", algs="${ALGS}"`,
});

const invalid = (why: string): BrokerError =>
  new BrokerError("token_invalid", `DPoP proof: ${why}`, dpopChallenge("invalid_dpop_proof", why));

/** The request a proof must name. */
export interface ProofTarget {
  readonly method: string;
  /** The URL the client called: scheme, host and path (a query is ignored). */
  readonly url: string;
  /** The token presented with the proof, if any: `ath` must be its hash. */
  readonly token?: string | undefined;
}

/** What the verifier needs of the store: one claim per proof id, cluster-wide. */
export interface ProofIds {
  claimOnce(value: string, ttlMs: number, now: number): Promise<boolean>;
}

/** `scheme://host[:port]/path`, normalised the way RFC 9449 §4.3 compares `htu` (no query, no fragment). */
const normalUrl = (value: string): string | undefined => {
  try {
    const url = new URL(value);
    // WHATWG URL already lowercases the host and drops default ports; a WebSocket's proof may
    // name the ws(s) URL of the same resource.
    const scheme = url.protocol === "ws:" ? "http:" : url.protocol === "wss:" ? "https:" : url.protocol;
    return `${scheme}//${url.host}${url.pathname}`;
  } catch {
    return undefined;
  }
};

const MAX_KEYS = 1_024;

interface KeptKey {
  readonly key: KeyObject;
  readonly jkt: string;
  readonly check: { readonly hash: string | null; readonly options: Record<string, number | string> };
}

const HASH: Record<string, string> = { "256": "sha256", "384": "sha384", "512": "sha512" };
const CURVE: Record<string, string> = { ES256: "prime256v1", ES384: "secp384r1", ES512: "secp521r1" };

/** How a signature of `alg` is checked, once the key is known to be of the kind `alg` needs. */
const checkFor = (alg: string, key: KeyObject): KeptKey["check"] => {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (alg.startsWith("ES")) {
    if (type !== "ec" || details.namedCurve !== CURVE[alg]) throw new Error("not the curve of the alg");
    return { hash: HASH[alg.slice(2)]!, options: { dsaEncoding: "ieee-p1363" } };
  }
  if (alg.startsWith("RS") || alg.startsWith("PS")) {
    if (type !== "rsa" || (details.modulusLength ?? 0) < 2048)
      throw new Error("not an RSA key of 2048 bits or more");
    return alg.startsWith("RS")
      ? { hash: HASH[alg.slice(2)]!, options: {} }
      : {
          hash: HASH[alg.slice(2)]!,
          options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
        };
  }
  if (type !== "ed25519" && !(alg === "EdDSA" && type === "ed448")) throw new Error("not an Ed25519 key");
  return { hash: null, options: {} };
};

export class DpopVerifier {
  readonly #skewMs: number;
  readonly #ids: ProofIds;
  readonly #now: () => number;
  /** Imported keys and their thumbprints by the JWK's text: a client signs every request with one key. */
  readonly #keys = new Map<string, KeptKey>();

  constructor(options: { skewMs: number; ids: ProofIds; now: () => number }) {
    this.#skewMs = options.skewMs;
    this.#ids = options.ids;
    this.#now = options.now;
  }

  /** Checks a proof for a request; its key's thumbprint when valid, else `401 token_invalid`. */
  async verify(proof: string, target: ProofTarget): Promise<string> {
    if (proof.length > 8_192) throw invalid("too long");
    const parts = proof.split(".");
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      if (parts.length !== 3) throw new Error("not three parts");
      header = decodeProtectedHeader(proof);
    } catch {
      throw invalid("not a JWS");
    }
    if (header.typ !== "dpop+jwt") throw invalid('typ must be "dpop+jwt"');
    if (typeof header.alg !== "string" || !ALGORITHMS.includes(header.alg))
      throw invalid(`alg must be one of ${ALGS}`);
    if (header.crit !== undefined) throw invalid("no crit header parameter is understood");
    const jwk = header.jwk as JWK | undefined;
    if (!jwk || typeof jwk !== "object") throw invalid("no jwk in the header");
    if ("d" in jwk || "k" in jwk) throw invalid("the jwk must be a public key");
    const { key, jkt, check } = await this.#key(jwk, header.alg);
    // The signature with node:crypto on the kept KeyObject: jose's WebCrypto path cost ~240 µs a
    // proof (a thread-pool round per verify), this ~70 µs for ES256.
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    if (!verifySignature(check.hash, signed, { key, ...check.options }, Buffer.from(parts[2]!, "base64url")))
      throw invalid("bad signature");
    let payload: JWTPayload;
    try {
      payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as JWTPayload;
    } catch {
      throw invalid("the payload is not JSON");
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload))
      throw invalid("the payload is not a JSON object");
    this.#claims(payload, target);
    const jti = payload.jti as string;
    if (!(await this.#ids.claimOnce(`${jkt}:${jti}`, 2 * this.#skewMs, this.#now())))
      throw invalid("jti already used");
    return jkt;
  }

  #claims(payload: JWTPayload, target: ProofTarget): void {
    const { jti, htm, htu, iat, ath } = payload as Record<string, unknown>;
    if (typeof jti !== "string" || jti.length === 0 || jti.length > 256)
      throw invalid("jti must be a string");
    if (htm !== target.method) throw invalid("htm is not this request's method");
    if (typeof htu !== "string" || normalUrl(htu) === undefined || normalUrl(htu) !== normalUrl(target.url))
      throw invalid("htu is not this request's URL");
    if (typeof iat !== "number" || Math.abs(iat * 1000 - this.#now()) > this.#skewMs)
      throw invalid("iat is too far from now");
    if (target.token !== undefined) {
      const expected = createHash("sha256").update(target.token).digest("base64url");
      if (ath !== expected) throw invalid("ath is not the hash of the token");
    }
  }

  async #key(jwk: JWK, alg: string): Promise<KeptKey> {
    const text = `${alg}\0${JSON.stringify(jwk)}`;
    const known = this.#keys.get(text);
    if (known) return known;
    let entry: KeptKey;
    try {
      const key = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
      entry = { key, jkt: await calculateJwkThumbprint(jwk, "sha256"), check: checkFor(alg, key) };
    } catch {
      throw invalid(`the jwk is not a public key for ${alg}`);
    }
    if (this.#keys.size >= MAX_KEYS) this.#keys.delete(this.#keys.keys().next().value!);
    this.#keys.set(text, entry);
    return entry;
  }
}

/**
 * The one `DPoP` header of a request from its raw header list: undefined when there is none; a
 * repeated one is refused (node would join the values).
 */
export const dpopHeader = (rawHeaders: readonly string[]): string | undefined => {
  let found: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length !== 4 || rawHeaders[i]!.toLowerCase() !== "dpop") continue;
    if (found !== undefined) throw invalid("more than one DPoP header");
    found = rawHeaders[i + 1]!.trim();
  }
  return found;
};

/**
 * The key a request proves, if it sends a proof: undefined without one — unless its token came
 * as `Authorization: DPoP …`, which promises one.
 */
export const provenKey = async (
  verifier: DpopVerifier,
  rawHeaders: readonly string[],
  target: ProofTarget,
  promised: boolean,
): Promise<string | undefined> => {
  const proof = dpopHeader(rawHeaders);
  if (proof === undefined) {
    if (promised) throw invalid("the DPoP scheme needs a DPoP header");
    return undefined;
  }
  return verifier.verify(proof, target);
};

/** `provenKey` for an incoming request: the URL it came to, its method, the token it presents. */
export const requestKey = (
  verifier: DpopVerifier,
  publicUrl: string | undefined,
  req: IncomingMessage,
  presented: { readonly token?: string; readonly dpop?: boolean },
): Promise<string | undefined> =>
  provenKey(
    verifier,
    req.rawHeaders,
    {
      method: req.method ?? "GET",
      url: requestUrl(publicUrl, req.headers.host, req.url ?? ""),
      token: presented.token,
    },
    presented.dpop === true,
  );

/** The URL a request came to, for `htu`: the configured public URL, else the Host it named (http). */
export const requestUrl = (publicUrl: string | undefined, host: string | undefined, path: string): string =>
  `${publicUrl ?? `http://${host ?? "localhost"}`}${path.split("?", 1)[0]}`;
