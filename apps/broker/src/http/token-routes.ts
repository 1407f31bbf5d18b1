import { IssueTokenRequest, RefreshTokenRequest } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import { looksLikeJwt, type OidcVerifier } from "../auth/oidc.js";
import type { KeyMatcher } from "../auth/secrets.js";
import { verifyIdentity, workloadAuthority } from "../auth/workload.js";
import type { KeyIssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { denialError, type PresentedToken, type TokenContext } from "../tokens/context.js";
import { delegateToken } from "../tokens/delegate.js";
import { issueRootToken } from "../tokens/issue.js";
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

const requireToken = (request: FastifyRequest): PresentedToken => {
  const presented = presentedCredential(request.raw.rawHeaders);
  const problem = credentialProblem(presented);
  if (problem) throw problem;
  if (presented.kind !== "token") throw new BrokerError("unauthenticated", "this route needs a prs_ token");
  return presented;
};
