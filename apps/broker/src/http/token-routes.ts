import { IssueTokenRequest, RefreshTokenRequest } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import { requestKey } from "../auth/dpop.js";
import { looksLikeJwt, type OidcVerifier } from "../auth/oidc.js";
import type { KeyMatcher } from "../auth/secrets.js";
import { verifyIdentity, workloadAuthority } from "../auth/workload.js";
import type { KeyIssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { denialError, type PresentedToken, type TokenContext, withPresented } from "../tokens/context.js";
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
    // A proof on an issuing request binds the new grant to its key (a delegation's: see delegate.ts),
    // checked once the credential is known to be one.
    const proven = () => requestKey(ctx.dpop, ctx.config.publicUrl, request.raw, {});
    if (presented.kind === "token") {
      const jkt = await requestKey(ctx.dpop, ctx.config.publicUrl, request.raw, presented);
      return reply.code(201).send(await delegateToken(ctx, { ...presented, jkt }, readBody, request.id));
    }
    if (presented.kind === "key" && looksLikeJwt(presented.key) && oidc.configured) {
      const verified = await verifyIdentity(oidc, presented.key, ctx.now());
      const body = readBody();
      return reply
        .code(201)
        .send(
          await issueRootToken(
            ctx,
            workloadAuthority(verified, body.scopes),
            body,
            request.id,
            await proven(),
          ),
        );
    }
    const issuer = presented.kind === "key" ? issuers.match(presented.key) : undefined;
    if (!issuer)
      throw new BrokerError(
        "unauthenticated",
        "the credential is not a known issuer key, identity token or token",
      );
    return reply
      .code(201)
      .send(
        await issueRootToken(ctx, { limits: issuer, identity: null }, readBody(), request.id, await proven()),
      );
  });

  app.post("/v1/tokens/refresh", async (request, reply) => {
    const token = await requireToken(ctx, request);
    let body: RefreshTokenRequest;
    try {
      body = parseInput(RefreshTokenRequest, request.body);
    } catch (error) {
      // Refresh authenticates and acts in one store call; a body it cannot use costs a look-up
      // first, so that only a holder of a live token hears what was wrong with it.
      const inspected = await withPresented(ctx.hasher, token, (ref) => ctx.store.inspect(ref, ctx.now()));
      if (!inspected.ok) throw denialError(inspected);
      throw error;
    }
    return reply.code(201).send(await refreshToken(ctx, token, body, request.id));
  });

  app.get("/v1/tokens/self", async (request) => describeSelf(ctx, await requireToken(ctx, request)));

  app.delete("/v1/tokens/self", async (request) =>
    revokeSelf(ctx, await requireToken(ctx, request), request.id),
  );
};

/** The request's token, with the key its DPoP proof proved (if it sent one). */
const requireToken = async (ctx: TokenContext, request: FastifyRequest): Promise<PresentedToken> => {
  const presented = presentedCredential(request.raw.rawHeaders);
  const problem = credentialProblem(presented);
  if (problem) throw problem;
  if (presented.kind !== "token") throw new BrokerError("unauthenticated", "this route needs a prs_ token");
  return { ...presented, jkt: await requestKey(ctx.dpop, ctx.config.publicUrl, request.raw, presented) };
};
