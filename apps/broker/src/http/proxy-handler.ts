import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { type AuditLog, auditEvent } from "../audit/audit-log.js";
import { credentialProblem, presentedCredential } from "../auth/credentials.js";
import type { TokenHasher } from "../auth/secrets.js";
import { HTTP_METHODS } from "../config/schema.js";
import type { BrokerConfig, ScopeConfig } from "../config/types.js";
import { BrokerError, DENIAL_MESSAGES } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import { checkProxyPath, queryProblem } from "../policy/path.js";
import { matchScopes } from "../policy/scopes.js";
import { type BodyCheck, checkBody, forwardedBody, hasBody } from "../proxy/body-check.js";
import { type ForwardOutcome, forward } from "../proxy/forward.js";
import { forwardRequestHeaders } from "../proxy/headers.js";
import { readUpTo, streamOn } from "../proxy/read-body.js";
import { Secrets } from "../proxy/scrub.js";
import type { UpstreamPools } from "../proxy/upstreams.js";
import { type Candidate, type Store, StoreUnavailableError, type Subject } from "../store/types.js";
import { writeError } from "./raw-reply.js";

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

const PREFIX = "/proxy/";

/** Whether a request target is the proxy's (served without the API framework: it is the hot path). */
export const isProxyTarget = (url: string | undefined): boolean =>
  url?.startsWith("/proxy") === true && (url.length === 6 || url[6] === "/" || url[6] === "?");

/**
 * `ANY /proxy/:upstream/*`, straight on node:http (the rest of the API is fastify). The order of checks: credential shape (no I/O) → path and scope
 * candidates (pure) → body constraints (reads the body only when a candidate scope has them)
 * → one atomic store call that checks token, grant, ancestors, scope, maxUses and rate limits
 * → forward. Anything denied never reaches the upstream, and every denial is audited.
 */
export const createProxyHandler = (
  deps: ProxyDeps,
): ((req: IncomingMessage, res: ServerResponse) => void) => {
  const { config, store, hasher, audit, pools, metrics } = deps;
  const authValues = new Map([...config.upstreams].map(([name, u]) => [name, u.auth?.value.reveal()]));
  // What to mask in upstream answers: the auth value, and the bare key after a scheme.
  const secrets = new Map(
    [...authValues].map(([name, value]) => {
      const bare = value?.replace(/^(Bearer|Basic|Token)\s+/i, "");
      return [name, new Secrets(value && bare ? [value, bare] : [])];
    }),
  );
  const plainCandidates = new Map<ScopeConfig, Candidate>(
    [...config.scopes.values()].map((s) => [s, candidateOf(s, true)]),
  );

  const handle = async (req: IncomingMessage, res: ServerResponse, requestId: string) => {
    const start = performance.now();
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const pathPart = q === -1 ? url : url.slice(0, q);
    const slash = pathPart.indexOf("/", PREFIX.length);
    const upstreamName = slash === -1 ? pathPart.slice(PREFIX.length) : pathPart.slice(PREFIX.length, slash);
    const rest = slash === -1 ? "" : pathPart.slice(slash);
    const method = req.method ?? "GET";
    const denied = (code: BrokerError, subject: Subject | null, rule: string | null) => {
      metrics.denial(code.code);
      audit.emit(
        auditEvent("denied", subject, requestId, deps.now(), {
          code: code.code,
          rule: rule ?? code.message,
          upstream: upstreamName,
          method,
          path: rest,
        }),
      );
      writeError(res, code, requestId);
    };

    const presented = presentedCredential(req.rawHeaders);
    const problem =
      credentialProblem(presented) ??
      (presented.kind === "key"
        ? new BrokerError("token_invalid", "the proxy takes a prs_ token, not a key")
        : undefined);
    if (problem || presented.kind !== "token") return denied(problem!, null, null);

    // Decide what could allow this request before asking the store, so the store call is the
    // only I/O. A request refused before that (unknown upstream, unusable path, a body that
    // cannot be read or checked) still goes through the token check, with no candidates: an
    // unknown caller gets 401, never a detailed 400, and the denial is attributed to a grant.
    const upstream = config.upstreams.get(upstreamName);
    const path = checkProxyPath(rest);
    let preDenial: BrokerError | undefined;
    let candidates: Candidate[] = [];
    let body: Buffer | Readable | null = hasBody(req) ? req : null;
    let check: BodyCheck | undefined;
    if (!upstream) {
      preDenial = new BrokerError("upstream_unknown", `no upstream named ${upstreamName.slice(0, 64)}`);
    } else if (!path.ok) {
      preDenial = new BrokerError("bad_request", `unusable path: ${path.reason}`);
    } else {
      const matched = matchScopes(config.scopesByUpstream.get(upstreamName) ?? [], method, path.path);
      try {
        const query = q === -1 ? undefined : queryProblem(url.slice(q + 1), !matched.every(allowsAnyMethod));
        if (query) throw new BrokerError("bad_request", query);
        if (matched.some((s) => s.hasConstraints)) {
          check = await checkBody(req, matched, path.path, config.proxy.maxBodyBytes);
          body = null;
          const reasons = check.reasons;
          candidates = matched.map((scope) =>
            reasons.has(scope.name) ? candidateOf(scope, false) : plainCandidates.get(scope)!,
          );
        } else {
          candidates = matched.map((scope) => plainCandidates.get(scope)!);
          // No upstream connection is lent to a body that is not arriving: the first
          // proxy.buffer_bytes are here before dispatch (a small body whole: cheaper than
          // streaming it, too), and the rest of a longer one streams with an idle timeout.
          if (body) {
            const read = await readUpTo(req, config.proxy.bufferBytes);
            body = read.complete ? read.body : streamOn(read.body, req, config.proxy.bodyIdleMs);
          }
        }
      } catch (error) {
        if (!(error instanceof BrokerError)) throw error;
        preDenial = error;
        candidates = [];
      }
    }

    const result = await store.authorize(
      { tree: presented.tree, hash: hasher.hash(presented.token) },
      deps.now(),
      candidates,
    );
    if (!result.ok) {
      const reasons = check?.reasons;
      const error =
        result.code === "scope_denied" && preDenial
          ? preDenial
          : result.code === "constraint_denied"
            ? new BrokerError(
                "constraint_denied",
                `scope ${result.rule}: ${reasons?.get(result.rule ?? "") ?? "constraint not met"}`,
              )
            : result.code === "rate_limited"
              ? new BrokerError("rate_limited", `rate limit of scope ${result.rule} reached`, {
                  "retry-after": String(Math.max(1, Math.ceil((result.retryAfterMs ?? 1000) / 1000))),
                })
              : new BrokerError(result.code, scopeDeniedMessage(result.code, upstreamName, method, rest));
      // A constraint denial names the scope and what in the body failed it, so the audit trail
      // says why (model "gpt-3" not allowed), not only where.
      const rule =
        result.code === "constraint_denied" && result.rule
          ? `${result.rule}: ${reasons?.get(result.rule) ?? "constraint not met"}`
          : result.rule;
      return denied(error, result.subject, rule);
    }

    const subject = result.subject;
    // A checked body is forwarded as the broker read it (with the ceiling filled in where the
    // scope that allowed it sets one the body did not state); an unchecked one as it came.
    const ceiling = check?.fills.get(result.scope);
    if (check) body = forwardedBody(check, result.scope);
    const pool = pools.get(upstreamName)!;
    const headers = forwardRequestHeaders(
      req.rawHeaders,
      upstream!,
      authValues.get(upstreamName),
      !Buffer.isBuffer(body),
      check ? "application/json" : undefined,
    );
    forward({
      pool,
      upstreamName,
      method: method as Dispatcher.HttpMethod,
      path: upstream!.basePath + rest + (q === -1 ? "" : url.slice(q)),
      headers,
      body,
      req: req,
      res,
      requestId: requestId,
      secrets: secrets.get(upstreamName)!,
      onDone: (outcome: ForwardOutcome) => {
        const at = deps.now();
        const totalMs = performance.now() - start;
        const credentialAge =
          subject.issuedAt === null ? undefined : Math.max(0, (at - subject.issuedAt) / 1000);
        metrics.request(upstreamName, outcome.status);
        metrics.upstream(upstreamName, outcome.upstreamMs / 1000);
        metrics.overhead.observe(Math.max(0, totalMs - outcome.upstreamMs) / 1000);
        if (credentialAge !== undefined) metrics.credentialAge.observe(credentialAge);
        audit.emit(
          auditEvent("used", subject, requestId, at, {
            upstream: upstreamName,
            method,
            path: rest,
            scope: result.scope,
            status: outcome.status,
            upstreamMs: round(outcome.upstreamMs),
            totalMs: round(totalMs),
            credentialAge,
            ...(outcome.usage?.model ? { model: outcome.usage.model } : {}),
            ...(outcome.usage?.usage ? { usage: outcome.usage.usage } : {}),
            ...(ceiling ? { ceiling } : {}),
            ...(outcome.error ? { code: outcome.error } : {}),
          }),
        );
      },
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
    handle(req, res, requestId).catch((error: unknown) => {
      if (error instanceof BrokerError) return writeError(res, error, requestId);
      if (error instanceof StoreUnavailableError) {
        return writeError(
          res,
          new BrokerError("store_unavailable", "the broker cannot reach its store"),
          requestId,
        );
      }
      deps.logError(error, requestId);
      writeError(res, new BrokerError("internal_error", "internal error"), requestId);
    });
  };
};

const allowsAnyMethod = (scope: ScopeConfig): boolean => scope.methods.size >= HTTP_METHODS.length;

const candidateOf = (scope: ScopeConfig, pass: boolean): Candidate => ({
  scope: scope.name,
  pass,
  limit: scope.rate?.limit ?? 0,
  windowMs: scope.rate?.windowMs ?? 0,
});

const scopeDeniedMessage = (
  code: keyof typeof DENIAL_MESSAGES,
  upstream: string,
  method: string,
  path: string,
): string =>
  code === "scope_denied"
    ? `no scope of this token allows ${method} ${path || "/"} on upstream ${upstream}`
    : DENIAL_MESSAGES[code];

const round = (ms: number): number => Math.round(ms * 100) / 100;
