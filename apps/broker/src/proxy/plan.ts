import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { HTTP_METHODS } from "../config/schema.js";
import type { BrokerConfig, ScopeConfig, UpstreamConfig } from "../config/types.js";
import { BrokerError } from "../errors.js";
import { outputFieldOf } from "../policy/constraints.js";
import { checkProxyPath, queryProblem } from "../policy/path.js";
import type { Price } from "../policy/pricing.js";
import { matchScopes } from "../policy/scopes.js";
import type { Candidate } from "../store/types.js";
import { type BodyCheck, checkBody, hasBody } from "./body-check.js";
import { type Costing, costingOf, fixedCosting, pricingOf } from "./costing.js";
import { type McpPlan, planMcp } from "./mcp-plan.js";
import { readUpTo, streamOn } from "./read-body.js";

const PREFIX = "/proxy/";

/** Where a proxied request goes: `/proxy/<upstream><rest>?<query>`. */
export interface ProxyTarget {
  readonly upstreamName: string;
  /** The path after the upstream's name, as sent ("" for none). */
  readonly rest: string;
  /** The query with its `?`, or "". */
  readonly query: string;
}

export const parseTarget = (url: string): ProxyTarget => {
  const q = url.indexOf("?");
  const pathPart = q === -1 ? url : url.slice(0, q);
  const slash = pathPart.indexOf("/", PREFIX.length);
  return {
    upstreamName: slash === -1 ? pathPart.slice(PREFIX.length) : pathPart.slice(PREFIX.length, slash),
    rest: slash === -1 ? "" : pathPart.slice(slash),
    query: q === -1 ? "" : url.slice(q),
  };
};

/** What the broker knows before it asks the store: which scopes could allow the request, and its body. */
export interface Plan {
  readonly upstream: UpstreamConfig | undefined;
  readonly candidates: readonly Candidate[];
  /** The body to forward: as it came, read whole, or streamed on after its first part. */
  readonly body: Buffer | Readable | null;
  /** Set when constrained scopes read and checked the body (it is then forwarded re-serialised). */
  readonly check: BodyCheck | undefined;
  /** Why the request is refused whatever the token allows; the token is still checked first. */
  readonly refusal: BrokerError | undefined;
  /** Scope name → what the request costs at most under it (used when the lineage has a budget). */
  readonly costings: ReadonlyMap<string, Costing>;
  /** An MCP POST: its messages as checked. */
  readonly mcp?: McpPlan;
}

/** Candidate entries for every scope, computed once: the hot path only picks them. */
export class Planner {
  readonly #config: BrokerConfig;
  /** The config this planner was built for. */
  get config(): BrokerConfig {
    return this.#config;
  }
  readonly #plain: ReadonlyMap<ScopeConfig, Candidate>;

  constructor(config: BrokerConfig) {
    this.#config = config;
    this.#plain = new Map([...config.scopes.values()].map((s) => [s, candidateOf(s, true)]));
  }

  /**
   * Decides what could allow this request before the store is asked, so the store call is the only
   * I/O but for reading the body. A request refused here (unknown upstream, unusable path or query,
   * a body that cannot be read or checked) still goes through the token check, with no candidates:
   * an unknown caller gets 401, never a detailed 400, and the denial is attributed to a grant.
   */
  async plan(req: IncomingMessage, target: ProxyTarget, method: string): Promise<Plan> {
    const upstream = this.#config.upstreams.get(target.upstreamName);
    const refused = (refusal: BrokerError): Plan => ({
      upstream,
      candidates: [],
      body: null,
      check: undefined,
      refusal,
      costings: NO_COSTINGS,
    });
    if (!upstream)
      return refused(
        new BrokerError("upstream_unknown", `no upstream named ${target.upstreamName.slice(0, 64)}`),
      );
    const path = checkProxyPath(target.rest);
    if (!path.ok) return refused(new BrokerError("bad_request", `unusable path: ${path.reason}`));
    const matched = matchScopes(
      this.#config.scopesByUpstream.get(target.upstreamName) ?? [],
      method,
      path.path,
    );
    try {
      const query = target.query && queryProblem(target.query.slice(1), !matched.every(allowsAnyMethod));
      if (query) return refused(new BrokerError("bad_request", query));
      if (upstream.kind === "mcp" && method === "POST") {
        const mcp = await planMcp(req, matched, this.#config.proxy.maxBodyBytes);
        const candidates = matched.map((scope) =>
          withWorst(
            mcp.reasons.has(scope.name) ? candidateOf(scope, false) : this.#plain.get(scope)!,
            MCP_COSTING,
          ),
        );
        return {
          upstream,
          candidates,
          body: mcp.body,
          check: undefined,
          refusal: undefined,
          costings: NO_COSTINGS,
          mcp,
        };
      }
      const pricing = pricingOf(method, path.path, outputFieldOf(path.path));
      const prices = this.#config.prices.get(target.upstreamName);
      if (matched.some((s) => s.hasConstraints) || (typeof pricing === "object" && prices !== undefined)) {
        const check = await checkBody(req, matched, path.path, this.#config.proxy.maxBodyBytes);
        const costings = new Map(
          matched.map(
            (scope) => [scope.name, this.#costing(scope, method, path.path, pricing, prices, check)] as const,
          ),
        );
        const candidates = matched.map((scope) =>
          withWorst(
            check.reasons.has(scope.name) ? candidateOf(scope, false) : this.#plain.get(scope)!,
            costings.get(scope.name)!,
          ),
        );
        return { upstream, candidates, body: null, check, refusal: undefined, costings };
      }
      const costings = new Map(
        matched.map(
          (scope) =>
            [scope.name, this.#costing(scope, method, path.path, pricing, prices, undefined)] as const,
        ),
      );
      return {
        upstream,
        candidates: matched.map((scope) => withWorst(this.#plain.get(scope)!, costings.get(scope.name)!)),
        body: await this.#readBody(req),
        check: undefined,
        refusal: undefined,
        costings,
      };
    } catch (error) {
      if (error instanceof BrokerError) return refused(error);
      throw error;
    }
  }

  /** What the request costs at most under a scope: free, unpriceable, or from its checked body. */
  #costing(
    scope: ScopeConfig,
    method: string,
    path: string,
    pricing: ReturnType<typeof pricingOf>,
    prices: readonly Price[] | undefined,
    check: BodyCheck | undefined,
  ): Costing {
    if (typeof pricing !== "object") return fixedCosting(pricing, method, path);
    if (check?.problem) return { worst: null, why: check.problem, streamUsage: false };
    const parsed = { body: check?.checked, bytes: check?.bytes ?? 0 };
    return costingOf(scope, path, pricing, parsed, prices, check?.fills.get(scope.name));
  }

  /**
   * No upstream connection is lent to a body that is not arriving: the first proxy.buffer_bytes are
   * here before dispatch (a small body whole: cheaper than streaming it, too), and the rest of a
   * longer one streams with an idle timeout.
   */
  async #readBody(req: IncomingMessage): Promise<Buffer | Readable | null> {
    if (!hasBody(req)) return null;
    const read = await readUpTo(req, this.#config.proxy.bufferBytes);
    return read.complete ? read.body : streamOn(read.body, req, this.#config.proxy.bodyIdleMs);
  }
}

const allowsAnyMethod = (scope: ScopeConfig): boolean => scope.methods.size >= HTTP_METHODS.length;

const candidateOf = (scope: ScopeConfig, pass: boolean): Candidate => ({
  scope: scope.name,
  pass,
  limit: scope.rate?.limit ?? 0,
  windowMs: scope.rate?.windowMs ?? 0,
  worst: null,
});

const withWorst = (candidate: Candidate, costing: Costing): Candidate =>
  candidate.worst === costing.worst ? candidate : { ...candidate, worst: costing.worst };

const NO_COSTINGS: ReadonlyMap<string, Costing> = new Map();

/** An MCP message costs no tokens: a budget lets it through, counts its slot, charges nothing. */
const MCP_COSTING: Costing = Object.freeze({
  worst: Object.freeze({ usd: 0, tokens: 0 }),
  streamUsage: false,
});
