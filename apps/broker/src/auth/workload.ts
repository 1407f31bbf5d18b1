import type { IssuerLimits } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { matchRule, type OidcVerifier, type VerifiedIdentity } from "./oidc.js";

/** Who may create this root grant, and how much it may hold. */
export interface RootAuthority {
  /** The issuer's (or the matched claims rule's) ceiling and limits. */
  readonly limits: IssuerLimits;
  /** A workload identity names the agent itself; a body `agent` that differs is refused. */
  readonly agent?: string;
  readonly identity: { readonly issuer: string; readonly subject: string } | null;
  /** Named by the identity token's on_behalf_of_claim: a body `onBehalfOf` that differs is refused. */
  readonly onBehalfOf?: string;
}

/** The identity token, verified (signature, claims), before anything else is read. */
export const verifyIdentity = async (
  oidc: OidcVerifier,
  jwt: string,
  now: number,
): Promise<VerifiedIdentity> => {
  const verified = await oidc.verify(jwt, now);
  if ("refused" in verified) {
    throw new BrokerError(
      verified.unreachable ? "upstream_error" : "unauthenticated",
      `the identity token was refused${verified.issuerName ? ` (issuer ${verified.issuerName})` : ""}: ${verified.reason}`,
    );
  }
  return verified;
};

/** A verified workload identity as the authority for a root grant: its issuer's limits, or its matching rule's. */
export const workloadAuthority = (
  verified: VerifiedIdentity,
  requested: readonly string[],
): RootAuthority => {
  const { issuer, identity, agent, claims } = verified;
  const onBehalfOf = verified.onBehalfOf === undefined ? {} : { onBehalfOf: verified.onBehalfOf };
  if (issuer.rules.length === 0) return { limits: issuer, agent, identity, ...onBehalfOf };
  const rule = matchRule(issuer.rules, claims, requested);
  if (!rule) {
    throw new BrokerError(
      "scope_denied",
      `no rule of issuer ${issuer.name} grants ${requested.join(", ")} to this identity`,
    );
  }
  return {
    limits: {
      name: issuer.name,
      maxBudget: issuer.maxBudget,
      requireDpop: issuer.requireDpop,
      requireActor: issuer.requireActor,
      scopes: rule.scopes,
      maxTtl: rule.maxTtl,
      maxLifetime: rule.maxLifetime,
      defaultTtl: Math.min(issuer.defaultTtl, rule.maxTtl),
    },
    agent,
    identity,
    ...onBehalfOf,
  };
};
