import type { FastifyInstance } from "fastify";
import { requestKey } from "../auth/dpop.js";
import type { OidcVerifier } from "../auth/oidc.js";
import { BrokerError } from "../errors.js";
import type { TokenContext } from "../tokens/context.js";
import { exchangeToken, oauthError } from "../tokens/exchange.js";

const FORM = "application/x-www-form-urlencoded";

/**
 * `POST /v1/oauth/token` (RFC 8693 token exchange): form-encoded in, OAuth JSON out, answers
 * and errors never cached. In its own fastify scope: only here is a form body parsed.
 */
export const registerOAuthRoutes = async (
  app: FastifyInstance,
  { ctx, oidc }: { readonly ctx: TokenContext; readonly oidc: OidcVerifier },
): Promise<void> => {
  await app.register(async (scope) => {
    scope.addContentTypeParser(FORM, { parseAs: "string", bodyLimit: 64 * 1024 }, (_request, body, done) =>
      done(null, new URLSearchParams(body as string)),
    );
    scope.post("/v1/oauth/token", async (request, reply) => {
      reply.header("cache-control", "no-store").header("pragma", "no-cache");
      const contentType = (request.headers["content-type"] ?? "").split(";", 1)[0]!.trim().toLowerCase();
      try {
        if (contentType !== FORM || !(request.body instanceof URLSearchParams))
          throw new BrokerError("bad_request", `the token endpoint takes ${FORM}`);
        const proven = () => requestKey(ctx.dpop, ctx.config.publicUrl, request.raw, {});
        return await exchangeToken({ ctx, oidc, proven }, request.body, request.id);
      } catch (error) {
        if (error instanceof BrokerError) {
          ctx.metrics.denial(error.code);
          ctx.audit.record("denied", error.subject ?? null, request.id, ctx.now(), {
            code: error.code,
            rule: error.message,
            method: "POST",
            path: "/v1/oauth/token",
          });
        }
        const refusal = oauthError(error);
        return reply
          .code(refusal.status)
          .headers(refusal.headers)
          .send({ error: refusal.error, error_description: refusal.description });
      }
    });
  });
};
