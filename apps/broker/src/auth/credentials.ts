import type { IncomingHttpHeaders } from "node:http";
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
  | { readonly kind: "token"; readonly token: string; readonly tree: string }
  | { readonly kind: "key"; readonly key: string };

const BEARER = /^Bearer +(\S+) *$/i;

const single = (value: string | string[] | undefined): string | undefined | null => {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return null; // repeated header: refuse rather than pick one
  return value;
};

/** Reads `Authorization: Bearer …`, `x-api-key` and `api-key`. */
export const presentedCredential = (headers: IncomingHttpHeaders): Presented => {
  const values: string[] = [];
  const auth = single(headers.authorization);
  if (auth === null) return { kind: "conflict" };
  if (auth !== undefined) {
    const match = BEARER.exec(auth);
    if (!match) return { kind: "malformed" };
    values.push(match[1]!);
  }
  for (const name of ["x-api-key", "api-key"] as const) {
    const value = single(headers[name]);
    if (value === null) return { kind: "conflict" };
    if (value !== undefined) values.push(value.trim());
  }
  if (values.length === 0) return { kind: "none" };
  const first = values[0]!;
  if (values.some((v) => v !== first)) return { kind: "conflict" };
  if (looksLikeToken(first)) {
    const tree = tokenTree(first);
    return tree ? { kind: "token", token: first, tree } : { kind: "bad-token" };
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
      return new BrokerError("bad_request", "conflicting credentials: send exactly one");
    case "malformed":
      return new BrokerError("unauthenticated", "the Authorization header must be Bearer <credential>");
    case "bad-token":
      return new BrokerError("token_invalid", "the token is malformed");
    case "token":
    case "key":
      return undefined;
  }
};
