import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { type AuditLog, auditEvent } from "../audit/audit-log.js";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import type { TokenHasher } from "../auth/secrets.js";
import type { BrokerConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import { forwardedBody } from "../proxy/body-check.js";
import { proxyDenial } from "../proxy/denials.js";
import { forward } from "../proxy/forward.js";
import { forwardRequestHeaders } from "../proxy/headers.js";
import { recordOutcome } from "../proxy/outcome.js";
import { Planner, type ProxyTarget, parseTarget } from "../proxy/plan.js";
import { Secrets } from "../proxy/scrub.js";
import type { UpstreamPools } from "../proxy/upstreams.js";
import { type Store, StoreUnavailableError, type Subject } from "../store/types.js";
import { writeError } from "./error-response.js";

export interface ProxyDeps {
  readonly config: BrokerConfig;
  readonly store: Store;
  readonly hasher: TokenHasher;
  readonly audit: AuditLog;
  readonly pools: UpstreamPools;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Request ids, from the same generator as the rest of the API. */
  readonly requestId: () => string;
  /** Logs what went wrong when a request fails unexpectedly (never request data). */
  readonly logError: (error: unknown, requestId: string) => void;
  /** True once the server is shutting down: new proxied requests get 503. */
  readonly closing: () => boolean;
}

/** Whether a request target is the proxy's (served without the API framework: it is the hot path). */
export const isProxyTarget = (url: string | undefined): boolean =>
  url?.startsWith("/proxy") === true && (url.length === 6 || url[6] === "/" || url[6] === "?");

/**
 * `ANY /proxy/:upstream/*`, straight on node:http (the rest of the API is fastify): the adapter
 * between a socket and the pipeline in `proxy/`. The order: credential shape (no I/O) → the plan
 * (target, candidate scopes, the body read and checked where a scope constrains it) → one atomic
 * store call that checks token, grant, ancestors, rules, scope, maxUses and rate limits → forward
 * → the outcome (metrics and the `used` event). Anything denied never reaches the upstream, and
 * every denial is audited.
 */
export const createProxyHandler = (
  deps: ProxyDeps,
): ((req: IncomingMessage, res: ServerResponse) => void) => {
  const { config, store, hasher, audit, pools, metrics } = deps;
  const planner = new Planner(config);
  const authValues = new Map([...config.upstreams].map(([name, u]) => [name, u.auth?.value.reveal()]));
  // What to mask in upstream answers: the auth value, and the bare key after a scheme.
  const secrets = new Map(
    [...authValues].map(([name, value]) => {
      const bare = value?.replace(/^(Bearer|Basic|Token)\s+/i, "");
      return [name, new Secrets(value && bare ? [value, bare] : [])];
    }),
  );

  const refuse = (
    res: ServerResponse,
    requestId: string,
    request: { target: ProxyTarget; method: string },
    denial: { error: BrokerError; subject: Subject | null; rule: string | null },
  ) => {
    metrics.denial(denial.error.code);
    audit.emit(
      auditEvent("denied", denial.subject, requestId, deps.now(), {
        code: denial.error.code,
        rule: denial.rule ?? denial.error.message,
        upstream: request.target.upstreamName,
        method: request.method,
        path: request.target.rest,
      }),
    );
    writeError(res, denial.error, requestId);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, requestId: string) => {
    const start = performance.now();
    const target = parseTarget(req.url ?? "");
    const method = req.method ?? "GET";
    const request = { target, method };
    const presented = presentedCredential(req.rawHeaders);
    const problem =
      credentialProblem(presented) ??
      (presented.kind === "key"
        ? new BrokerError("token_invalid", "the proxy takes a prs_ token, not a key")
        : undefined);
    if (problem || presented.kind !== "token") {
      return refuse(res, requestId, request, { error: problem!, subject: null, rule: null });
    }

    const plan = await planner.plan(req, target, method);
    const result = await store.authorize(
      { tree: presented.tree, hash: hasher.hash(presented.token) },
      deps.now(),
      plan.candidates,
    );
    if (!result.ok) {
      const { error, rule } = proxyDenial({ denied: result, plan, target, method });
      return refuse(res, requestId, request, { error, subject: result.subject, rule });
    }

    const upstream = plan.upstream!;
    const forwarded = {
      subject: result.subject,
      requestId,
      upstream: target.upstreamName,
      method,
      path: target.rest,
      scope: result.scope,
      start,
      // A checked body is forwarded as the broker read it, with the ceiling filled in where the
      // scope that allowed it sets one the body did not state; an unchecked one as it came.
      ceiling: plan.check?.fills.get(result.scope),
    };
    const body = plan.check ? forwardedBody(plan.check, result.scope) : plan.body;
    forward({
      pool: pools.get(target.upstreamName)!,
      upstreamName: target.upstreamName,
      method: method as Dispatcher.HttpMethod,
      path: upstream.basePath + target.rest + target.query,
      headers: forwardRequestHeaders(
        req.rawHeaders,
        upstream,
        authValues.get(target.upstreamName),
        !Buffer.isBuffer(body),
        plan.check ? "application/json" : undefined,
      ),
      body,
      req,
      res,
      requestId,
      secrets: secrets.get(target.upstreamName)!,
      onDone: (outcome) => recordOutcome(deps, forwarded, outcome),
    });
  };

  return (req, res) => {
    const requestId = deps.requestId();
    if (deps.closing()) {
      res.setHeader("connection", "close");
      writeError(res, new BrokerError("store_unavailable", "the broker is shutting down"), requestId);
      return;
    }
    const path = (req.url ?? "").split("?", 1)[0];
    if (path === "/proxy" || path === "/proxy/") {
      writeError(
        res,
        new BrokerError("upstream_unknown", "name an upstream: /proxy/<upstream>/<path>"),
        requestId,
      );
      return;
    }
    handle(req, res, requestId).catch((error: unknown) =>
      writeError(res, toBrokerError(error, requestId), requestId),
    );
  };

  /** What an error thrown on the way becomes (anything unexpected is logged, and a bare 500). */
  function toBrokerError(error: unknown, requestId: string): BrokerError {
    if (error instanceof BrokerError) return error;
    if (error instanceof StoreUnavailableError) {
      return new BrokerError("store_unavailable", "the broker cannot reach its store");
    }
    deps.logError(error, requestId);
    return new BrokerError("internal_error", "internal error");
  }
};
