import type { RefreshTokenRequest, TokenResponse } from "@perishable/protocol";
import { newToken, newTokenId } from "../auth/secrets.js";
import { BrokerError } from "../errors.js";
import {
  denialError,
  type PresentedToken,
  subjectOf,
  type TokenContext,
  tokenResponse,
  withPresented,
} from "./context.js";

/**
 * `POST /v1/tokens/refresh`: a new token for the presented token's grant. The presented token
 * stays valid until its own expiry (the overlap that lets in-flight calls finish); the new one
 * never lives past the grant's notAfter.
 */
export const refreshToken = async (
  ctx: TokenContext,
  presented: PresentedToken,
  body: RefreshTokenRequest,
  requestId: string,
): Promise<TokenResponse> => {
  const now = ctx.now();
  const token = newToken(presented.tree);
  const tokenId = newTokenId(presented.tree);
  // The new token is bound to the key the old one was found under (a bound grant's tokens all are).
  const result = await withPresented(ctx.hasher, presented, (ref, jkt) =>
    ctx.store.refresh(ref, now, {
      tokenId,
      hash: ctx.hasher.hash(token, jkt),
      ttl: body.ttl === undefined ? undefined : body.ttl * 1000,
    }),
  );
  if (!result.ok) {
    if (result.code === "ttl_exceeded") {
      throw new BrokerError("ttl_exceeded", `ttl ${body.ttl} is above the grant's max_ttl`);
    }
    throw denialError(result);
  }
  const { grant, token: record } = result;
  ctx.metrics.tokens.inc({ kind: "refreshed" });
  ctx.audit.record("refreshed", subjectOf(grant, record), requestId, now, {
    expiresAt: new Date(record.expiresAt).toISOString(),
  });
  return tokenResponse(token, record, grant);
};
