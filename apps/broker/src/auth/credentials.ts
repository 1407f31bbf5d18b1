import { looksLikeToken, tokenTree } from "@perishable/protocol";
import { BrokerError } from "../errors.js";

/**
 * What a request presents as its credential. The proxy accepts a token in any of the three
 * headers agents' SDKs use; if more than one is present they must agree, so a request cannot
 * smuggle a second credential past one layer and have another layer read it.
 */
export type Presented =
  | { readonly kind: "none" }
  /** Two credentials that differ, or a repeated credential header. */
  | { readonly kind: "conflict" }
  /** An Authorization header that is not `Bearer <credential>`. */
  | { readonly kind: "malformed" }
  /** Starts like a token but is not one. */
  | { readonly kind: "bad-token" }
  /** `dpop`: sent as `Authorization: DPoP <token>`, which needs a proof (RFC 9449 §7.1). */
  | { readonly kind: "token"; readonly token: string; readonly tree: string; readonly dpop: boolean }
  | { readonly kind: "key"; readonly key: string };

const BEARER = /^(Bearer|DPoP) +(\S+) *$/i;

/**
 * Reads `Authorization: Bearer …`, `x-api-key` and `api-key` from the raw header list. Node keeps
 * only the first of repeated Authorization and Host headers in `req.headers`, so repetition is
 * detected here, on the raw list: a repeated credential or Host header is a conflict, never "the
 * first one wins" (a front proxy might have picked the other one).
 */
export const presentedCredential = (rawHeaders: readonly string[]): Presented => {
  let auth: string | undefined;
  const keys: string[] = [];
  const seen = new Set<string>();
  let hosts = 0;
  let repeated = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length < 4 || name.length > 13) continue;
    const lower = name.toLowerCase();
    if (lower === "authorization") {
      if (auth !== undefined) repeated = true;
      auth = rawHeaders[i + 1]!;
    } else if (lower === "x-api-key" || lower === "api-key") {
      if (seen.has(lower)) repeated = true;
      seen.add(lower);
      keys.push(rawHeaders[i + 1]!.trim());
    } else if (lower === "host") {
      hosts += 1;
    }
  }
  if (repeated || hosts > 1) return { kind: "conflict" };
  const values: string[] = [];
  let dpop = false;
  if (auth !== undefined) {
    const match = BEARER.exec(auth);
    if (!match) return { kind: "malformed" };
    dpop = match[1]!.length === 4;
    values.push(match[2]!);
  }
  values.push(...keys);
  if (values.length === 0) return { kind: "none" };
  const first = values[0]!;
  if (values.some((v) => v !== first)) return { kind: "conflict" };
  if (looksLikeToken(first)) {
    const tree = tokenTree(first);
    return tree ? { kind: "token", token: first, tree, dpop } : { kind: "bad-token" };
  }
  return { kind: "key", key: first };
};

/** Why a presented credential is unusable, as the error to answer with (undefined when usable). */
export const credentialProblem = (presented: Presented): BrokerError | undefined => {
  switch (presented.kind) {
    case "none":
      return new BrokerError(
        "unauthenticated",
        "missing credential: send Authorization: Bearer <credential>",
      );
    case "conflict":
      return new BrokerError(
        "bad_request",
        "conflicting or repeated credential or Host headers: send exactly one of each",
      );
    case "malformed":
      return new BrokerError("unauthenticated", "the Authorization header must be Bearer <credential>");
    case "bad-token":
      return new BrokerError("token_invalid", "the token is malformed");
    case "token":
    case "key":
      return undefined;
  }
};
