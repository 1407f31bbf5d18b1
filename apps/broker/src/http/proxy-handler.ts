import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "@opentelemetry/api";
import type { Dispatcher } from "undici";
import type { AuditLog } from "../audit/audit-log.js";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import { type DpopVerifier, requestKey } from "../auth/dpop.js";
import type { TokenHasher } from "../auth/secrets.js";
import type { BrokerConfig } from "../config/types.js";
import { BrokerError, refusal } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import { forwardedBody } from "../proxy/body-check.js";
import { BUDGET_LEFT_HEADER, budgetLeftValue, chargeOf, costDetail } from "../proxy/charge.js";
import { proxyDenial } from "../proxy/denials.js";
import type { FlightLedger } from "../proxy/flight-ledger.js";
import { forward } from "../proxy/forward.js";
import { forwardRequestHeaders } from "../proxy/headers.js";
import type { LiveConnections } from "../proxy/live.js";
import { answersAsJsonRpc, mcpDetail, writeJsonRpcRefusal } from "../proxy/mcp-answer.js";
import type { McpPlan } from "../proxy/mcp-plan.js";
import { toolListRewriter } from "../proxy/mcp-rewrite.js";
import { openSession, replaceHeader, sealSession } from "../proxy/mcp-session.js";
import { recordOutcome } from "../proxy/outcome.js";
import { Planner, type ProxyTarget, parseTarget } from "../proxy/plan.js";
import type { UpstreamKeys } from "../proxy/upstream-keys.js";
import { type UpstreamPools, upstreamPath } from "../proxy/upstreams.js";
import { type Store, StoreUnavailableError } from "../store/types.js";
import type { Tracing } from "../telemetry/tracing.js";
import { withPresented } from "../tokens/context.js";
import { writeError } from "./error-response.js";
import type { Allowed, Refusal } from "./proxy-types.js";

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
  /** Leases, renewals and settlements of the requests of tracked lineages. */
  readonly flights: FlightLedger;
  /** This node's live answers, cut when their authority is revoked or ends. */
  readonly live: LiveConnections;
  /** Checks DPoP proofs (RFC 9449): a bound token is found only with its key's proof. */
  readonly dpop: DpopVerifier;
  /** The upstreams' auth values as they are now (a rotated key takes over for new requests). */
  readonly keys: UpstreamKeys;
  /** OpenTelemetry spans, when configured (undefined: off, no cost). */
  readonly tracing: Tracing | undefined;
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
  const handler = new ProxyHandler(deps);
  return (req, res) => handler.serve(req, res);
};

class ProxyHandler {
  readonly #deps: ProxyDeps;
  #planner: Planner;

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
    this.#planner = new Planner(deps.config);
  }

  serve(req: IncomingMessage, res: ServerResponse): void {
    const requestId = this.#deps.requestId();
    if (this.#deps.closing()) {
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
    this.#handle(req, res, requestId).catch((error: unknown) =>
      writeError(res, this.#toBrokerError(error, requestId), requestId),
    );
  }

  async #handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const { store, hasher } = this.#deps;
    const start = performance.now();
    const target = parseTarget(req.url ?? "");
    const method = req.method ?? "GET";
    const trace = this.#deps.tracing?.context(req.headers);
    const request = { target, method, start, trace };
    const presented = presentedCredential(req.rawHeaders);
    const problem =
      credentialProblem(presented) ??
      (presented.kind === "key"
        ? new BrokerError("token_invalid", "the proxy takes a prs_ token, not a key")
        : undefined);
    if (problem || presented.kind !== "token") {
      return this.#refuse(res, requestId, request, { error: problem!, subject: null, rule: null });
    }

    const jkt = await requestKey(this.#deps.dpop, this.#deps.config.publicUrl, req, presented).catch(refusal);
    if (jkt instanceof BrokerError)
      return this.#refuse(res, requestId, request, { error: jkt, subject: null, rule: null });
    // A reloaded config (SIGHUP) gets its own planner on its first request.
    if (this.#planner.config !== this.#deps.config) this.#planner = new Planner(this.#deps.config);
    const plan = await this.#planner.plan(req, target, method);
    const now = this.#deps.now();
    const lease = this.#deps.flights.lease(now);
    const result = await withPresented(hasher, { ...presented, jkt }, (ref) =>
      store.authorize(ref, now, plan.candidates, lease),
    );
    if (!result.ok) {
      const { error, rule } = proxyDenial({ denied: result, plan, target, method });
      return this.#refuse(
        res,
        requestId,
        { ...request, mcp: plan.mcp },
        { error, subject: result.subject, rule },
      );
    }
    const { flight } = result;
    // An MCP session id must be one this lineage was handed (mcp-session.ts).
    let session: string | undefined;
    const presentedSession = plan.upstream?.kind === "mcp" ? req.headers["mcp-session-id"] : undefined;
    if (typeof presentedSession === "string") {
      session = openSession(hasher, result.subject.rootGrantId ?? "", presentedSession);
      if (session === undefined) {
        if (flight) this.#deps.flights.close(flight, { usd: 0, tokens: 0 });
        const error = new BrokerError(
          "not_found",
          "no MCP session of this lineage has that id: initialize a new one",
        );
        return this.#refuse(
          res,
          requestId,
          { ...request, mcp: plan.mcp },
          { error, subject: result.subject, rule: null },
        );
      }
    }
    if (flight) this.#deps.flights.open(flight);
    try {
      const { subject, scope } = result;
      const allowed = {
        requestId,
        start,
        target,
        method,
        plan,
        subject,
        scope,
        flight,
        left: result.left,
        session,
        notAfter: result.notAfter,
        trace,
      };
      this.#forward(req, res, allowed);
    } catch (error) {
      // Never sent: its reservation is charged in full all the same (a flight always closes).
      if (flight) this.#deps.flights.close(flight, null);
      throw error;
    }
  }

  /** Sends an allowed request on, and records its outcome when the answer has been relayed. */
  #forward(req: IncomingMessage, res: ServerResponse, allowed: Allowed): void {
    const { requestId, target, method, plan, scope } = allowed;
    const upstream = plan.upstream!;
    const forwarded = {
      subject: allowed.subject,
      requestId,
      upstream: target.upstreamName,
      method,
      path: target.rest,
      scope,
      start: allowed.start,
      // A checked body is forwarded as the broker read it, with the ceiling filled in where the
      // scope that allowed it sets one the body did not state; an unchecked one as it came.
      ceiling: plan.check?.fills.get(scope),
      ...(plan.mcp ? { mcp: mcpDetail(plan.mcp) } : {}),
      trace: allowed.trace,
    };
    if (plan.mcp) this.#countToolCalls(target.upstreamName, scope, plan.mcp);
    const costing = plan.costings.get(scope);
    const { flight } = allowed;
    const body = plan.check ? forwardedBody(plan.check, scope, flight ? costing : undefined) : plan.body;
    let done: (() => void) | undefined;
    const cut = forward({
      pool: this.#deps.pools.get(target.upstreamName)!,
      upstreamName: target.upstreamName,
      method: method as Dispatcher.HttpMethod,
      path: upstreamPath(upstream, target),
      headers: this.#mcpHeaders(
        forwardRequestHeaders(
          req.rawHeaders,
          upstream,
          this.#deps.keys.value(target.upstreamName),
          !Buffer.isBuffer(body),
          plan.check?.checked !== undefined || plan.mcp ? "application/json" : undefined,
        ),
        allowed,
      ),
      ...(upstream.kind === "mcp"
        ? {
            mapResponseHeaders: (headers: string[]) =>
              replaceHeader(headers, "mcp-session-id", (id) =>
                sealSession(this.#deps.hasher, allowed.subject.rootGrantId ?? "", id),
              ),
          }
        : {}),
      body,
      req,
      res,
      requestId,
      secrets: this.#deps.keys.secrets(target.upstreamName),
      ...(allowed.left ? { addHeaders: [BUDGET_LEFT_HEADER, budgetLeftValue(allowed.left)] } : {}),
      ...(plan.mcp && plan.mcp.listIds.size > 0 && this.#scopeMcp(scope)
        ? {
            rewrite: (type: string | undefined) =>
              toolListRewriter(type, plan.mcp!.listIds, this.#scopeMcp(scope)!),
          }
        : {}),
      onDone: (outcome) => {
        done?.();
        const charge = chargeOf(outcome, costing);
        if (flight) this.#deps.flights.close(flight, charge.cost);
        const priced = costing?.price !== undefined || (flight !== null && costing?.worst !== null);
        const cost = priced ? costDetail(charge, costing) : undefined;
        if (cost && costing?.price)
          this.#deps.metrics.spend(target.upstreamName, costing.price.glob, cost.usd, cost.tokens);
        recordOutcome(this.#deps, forwarded, outcome, cost);
      },
    });
    const what = {
      kind: "http",
      subject: allowed.subject,
      upstream: target.upstreamName,
      path: target.rest,
    } as const;
    const maxMs = this.#deps.config.scopes.get(scope)?.maxConnectionMs;
    done = this.#deps.live.open(what, allowed.notAfter, this.#deps.now(), cut, maxMs);
  }

  #refuse(
    res: ServerResponse,
    requestId: string,
    request: {
      target: ProxyTarget;
      method: string;
      mcp?: McpPlan | undefined;
      start?: number;
      trace?: Context;
    },
    denial: Refusal,
  ): void {
    this.#deps.metrics.denial(denial.error.code);
    const { target } = request;
    this.#deps.tracing?.refused(
      { ...request, upstream: target.upstreamName, path: target.rest },
      denial.error,
      denial.subject,
    );
    this.#deps.audit.record("denied", denial.subject, requestId, this.#deps.now(), {
      code: denial.error.code,
      rule: denial.rule ?? denial.error.message,
      upstream: request.target.upstreamName,
      method: request.method,
      path: request.target.rest,
      ...(request.mcp ? { mcp: mcpDetail(request.mcp) } : {}),
    });
    if (request.mcp && answersAsJsonRpc(denial.error, request.mcp)) {
      writeJsonRpcRefusal(res, request.mcp, denial.error, requestId);
      return;
    }
    writeError(res, denial.error, requestId);
  }

  /** The request's headers with the MCP session id the server gave (the seal taken off). */
  #mcpHeaders(headers: string[], allowed: Allowed): string[] {
    const { session } = allowed;
    return session === undefined ? headers : replaceHeader(headers, "mcp-session-id", () => session);
  }

  /** Counts each tools/call by the glob of the scope that allowed it (bounded by the config). */
  #countToolCalls(upstream: string, scope: string, mcp: McpPlan): void {
    const c = this.#scopeMcp(scope);
    for (const m of mcp.messages) {
      if (m.method !== "tools/call" || m.tool === undefined) continue;
      const i = c?.tools?.findIndex((re) => re.test(m.tool!)) ?? -1;
      this.#deps.metrics.toolCall(upstream, i >= 0 ? c!.toolGlobs![i]! : "any");
    }
  }

  #scopeMcp(scope: string) {
    return this.#deps.config.scopes.get(scope)?.mcp;
  }

  /** What an error thrown on the way becomes (anything unexpected is logged, and a bare 500). */
  #toBrokerError(error: unknown, requestId: string): BrokerError {
    if (error instanceof BrokerError) return error;
    if (error instanceof StoreUnavailableError) {
      return new BrokerError("store_unavailable", "the broker cannot reach its store");
    }
    this.#deps.logError(error, requestId);
    return new BrokerError("internal_error", "internal error");
  }
}
