import type { Context } from "@opentelemetry/api";
import type { AuditDetails } from "@perishable/protocol";
import type { AuditLog } from "../audit/audit-log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { OutputField } from "../policy/constraints.js";
import type { Subject } from "../store/types.js";
import type { Tracing } from "../telemetry/tracing.js";
import type { ForwardOutcome } from "./forward.js";

/** One allowed, forwarded request, for its `used` event and metrics once the answer is over. */
export interface Forwarded {
  readonly subject: Subject;
  readonly requestId: string;
  readonly upstream: string;
  readonly method: string;
  readonly path: string;
  readonly scope: string;
  /** performance.now() when the request arrived. */
  readonly start: number;
  readonly ceiling: { readonly field: OutputField; readonly value: number } | undefined;
  /** An MCP message: its method and tool. */
  readonly mcp?: { readonly method: string; readonly tool?: string };
  /** The caller's trace context, when tracing is on. */
  readonly trace?: Context | undefined;
}

/** Counts a finished request in the metrics and writes its `used` event. */
export const recordOutcome = (
  deps: {
    readonly audit: AuditLog;
    readonly metrics: Metrics;
    readonly now: () => number;
    readonly tracing?: Tracing | undefined;
  },
  request: Forwarded,
  outcome: ForwardOutcome,
  cost?: AuditDetails<"used">["cost"],
): void => {
  const { metrics } = deps;
  const at = deps.now();
  const totalMs = performance.now() - request.start;
  const issuedAt = request.subject.issuedAt;
  const credentialAge = issuedAt === null ? undefined : Math.max(0, (at - issuedAt) / 1000);
  metrics.request(request.upstream, outcome.status);
  metrics.upstream(request.upstream, outcome.upstreamMs / 1000);
  metrics.overhead.observe(Math.max(0, totalMs - outcome.upstreamMs) / 1000);
  if (credentialAge !== undefined) metrics.credentialAge.observe(credentialAge);
  deps.tracing?.proxied(request, outcome);
  deps.audit.record("used", request.subject, request.requestId, at, {
    upstream: request.upstream,
    method: request.method,
    path: request.path,
    scope: request.scope,
    status: outcome.status,
    upstreamMs: round(outcome.upstreamMs),
    totalMs: round(totalMs),
    credentialAge,
    // Every key always there, undefined when it does not apply (left out of the event): one
    // object shape for every request, which keeps the encoder's key walk fast.
    model: outcome.usage?.model || undefined,
    usage: outcome.usage?.usage || undefined,
    ceiling: request.ceiling || undefined,
    mcp: request.mcp || undefined,
    code: outcome.error || undefined,
    cost: cost || undefined,
  });
};

const round = (ms: number): number => Math.round(ms * 100) / 100;
