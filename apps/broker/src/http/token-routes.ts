import { IssueTokenRequest, RefreshTokenRequest } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import type { KeyMatcher } from "../auth/secrets.js";
import type { IssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import type { PresentedToken, TokenContext } from "../tokens/context.js";
import { delegateToken } from "../tokens/delegate.js";
import { issueRootToken } from "../tokens/issue.js";
import { refreshToken } from "../tokens/refresh.js";
import { describeSelf, revokeSelf } from "../tokens/self.js";
import { parseInput } from "./reply.js";

export interface TokenRouteDeps {
  readonly ctx: TokenContext;
  readonly issuers: KeyMatcher<IssuerConfig>;
}

/** `/v1/tokens…`: thin routes; the decisions live in `tokens/`. */
export const registerTokenRoutes = (app: FastifyInstance, { ctx, issuers }: TokenRouteDeps): void => {
  app.post("/v1/tokens", async (request, reply) => {
    const presented = presentedCredential(request.headers);
    const problem = credentialProblem(presented);
    if (problem) throw problem;
    const body = parseInput(IssueTokenRequest, request.body);
    if (presented.kind === "token") {
      return reply.code(201).send(await delegateToken(ctx, presented, body, request.id));
    }
    const issuer = presented.kind === "key" ? issuers.match(presented.key) : undefined;
    if (!issuer)
      throw new BrokerError("unauthenticated", "the credential is not a known issuer key or token");
    return reply.code(201).send(await issueRootToken(ctx, issuer, body, request.id));
  });

  app.post("/v1/tokens/refresh", async (request, reply) => {
    const token = requireToken(request);
    const body = parseInput(RefreshTokenRequest, request.body);
    return reply.code(201).send(await refreshToken(ctx, token, body, request.id));
  });

  app.get("/v1/tokens/self", async (request) => describeSelf(ctx, requireToken(request)));

  app.delete("/v1/tokens/self", async (request) => revokeSelf(ctx, requireToken(request), request.id));
};

const requireToken = (request: FastifyRequest): PresentedToken => {
  const presented = presentedCredential(request.headers);
  const problem = credentialProblem(presented);
  if (problem) throw problem;
  if (presented.kind !== "token") throw new BrokerError("unauthenticated", "this route needs a prs_ token");
  return presented;
};
