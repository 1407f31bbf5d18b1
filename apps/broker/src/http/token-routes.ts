import { IssueTokenRequest, RefreshTokenRequest } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import { looksLikeJwt, matchRule, type OidcVerifier, type VerifiedIdentity } from "../auth/oidc.js";
import type { KeyMatcher } from "../auth/secrets.js";
import type { KeyIssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { denialError, type PresentedToken, type TokenContext } from "../tokens/context.js";
import { delegateToken } from "../tokens/delegate.js";
import { issueRootToken, type RootAuthority } from "../tokens/issue.js";
import { refreshToken } from "../tokens/refresh.js";
import { describeSelf, revokeSelf } from "../tokens/self.js";
import { parseInput } from "./reply.js";

export interface TokenRouteDeps {
  readonly ctx: TokenContext;
  readonly issuers: KeyMatcher<KeyIssuerConfig>;
  readonly oidc: OidcVerifier;
}

/** `/v1/tokens…`: thin routes; the decisions live in `tokens/`. */
export const registerTokenRoutes = (app: FastifyInstance, { ctx, issuers, oidc }: TokenRouteDeps): void => {
  // Every route here authenticates before it reads the body: a caller without a credential learns
  // nothing from a detailed 400, and what it sent never reaches the audit trail as a rule.
  app.post("/v1/tokens", async (request, reply) => {
    const presented = presentedCredential(request.raw.rawHeaders);
    const problem = credentialProblem(presented);
    if (problem) throw problem;
    const readBody = () => parseInput(IssueTokenRequest, request.body);
    if (presented.kind === "token") {
      return reply.code(201).send(await delegateToken(ctx, presented, readBody, request.id));
    }
    if (presented.kind === "key" && looksLikeJwt(presented.key) && oidc.configured) {
      const verified = await verifyIdentity(oidc, presented.key, ctx.now());
      const body = readBody();
      return reply
        .code(201)
        .send(await issueRootToken(ctx, workloadAuthority(verified, body.scopes), body, request.id));
    }
    const issuer = presented.kind === "key" ? issuers.match(presented.key) : undefined;
    if (!issuer)
      throw new BrokerError(
        "unauthenticated",
        "the credential is not a known issuer key, identity token or token",
      );
    return reply
      .code(201)
      .send(await issueRootToken(ctx, { limits: issuer, identity: null }, readBody(), request.id));
  });

  app.post("/v1/tokens/refresh", async (request, reply) => {
    const token = requireToken(request);
    let body: RefreshTokenRequest;
    try {
      body = parseInput(RefreshTokenRequest, request.body);
    } catch (error) {
      // Refresh authenticates and acts in one store call; a body it cannot use costs a look-up
      // first, so that only a holder of a live token hears what was wrong with it.
      const inspected = await ctx.store.inspect(
        { tree: token.tree, hash: ctx.hasher.hash(token.token) },
        ctx.now(),
      );
      if (!inspected.ok) throw denialError(inspected);
      throw error;
    }
    return reply.code(201).send(await refreshToken(ctx, token, body, request.id));
  });

  app.get("/v1/tokens/self", async (request) => describeSelf(ctx, requireToken(request)));

  app.delete("/v1/tokens/self", async (request) => revokeSelf(ctx, requireToken(request), request.id));
};

/** The identity token, verified (signature, claims), before anything else is read. */
const verifyIdentity = async (oidc: OidcVerifier, jwt: string, now: number): Promise<VerifiedIdentity> => {
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
const workloadAuthority = (verified: VerifiedIdentity, requested: readonly string[]): RootAuthority => {
  const { issuer, identity, agent, claims } = verified;
  if (issuer.rules.length === 0) return { limits: issuer, agent, identity };
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
      scopes: rule.scopes,
      maxTtl: rule.maxTtl,
      maxLifetime: rule.maxLifetime,
      defaultTtl: Math.min(issuer.defaultTtl, rule.maxTtl),
    },
    agent,
    identity,
  };
};

const requireToken = (request: FastifyRequest): PresentedToken => {
  const presented = presentedCredential(request.raw.rawHeaders);
  const problem = credentialProblem(presented);
  if (problem) throw problem;
  if (presented.kind !== "token") throw new BrokerError("unauthenticated", "this route needs a prs_ token");
  return presented;
};
