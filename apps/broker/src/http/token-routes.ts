import { IssueTokenRequest, RefreshTokenRequest } from "@perishable/protocol";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { auditEvent } from "../audit/audit-log.js";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import type { KeyMatcher } from "../auth/secrets.js";
import type { IssuerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import type { PresentedToken, TokenContext } from "../tokens/context.js";
import { delegateToken } from "../tokens/delegate.js";
import { issueRootToken } from "../tokens/issue.js";
import { refreshToken } from "../tokens/refresh.js";
import { describeSelf, revokeSelf } from "../tokens/self.js";
import { parseBody } from "./reply.js";

export interface TokenRouteDeps {
  readonly ctx: TokenContext;
  readonly issuers: KeyMatcher<IssuerConfig>;
}

/** `/v1/tokens…`: thin routes; the decisions live in `tokens/`. */
export const registerTokenRoutes = (app: FastifyInstance, { ctx, issuers }: TokenRouteDeps): void => {
  // A refused credential on these routes is a security event: record it, then answer.
  app.addHook("onError", async (request, _reply, error) => {
    if (!(error instanceof BrokerError)) return;
    ctx.audit.emit(
      auditEvent("denied", null, request.id, ctx.now(), {
        code: error.code,
        rule: error.message,
        method: request.method,
        path: request.routeOptions.url ?? "",
      }),
    );
  });

  app.post("/v1/tokens", async (request, reply) => {
    const presented = presentedCredential(request.headers);
    const problem = credentialProblem(presented);
    if (problem) throw problem;
    const body = parseBody(IssueTokenRequest, request.body);
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
    const body = parseBody(RefreshTokenRequest, request.body);
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
