import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { TallyCounter, TallyHistogram } from "./tally.js";

export interface MetricsSources {
  /** Audit events held in memory, not yet written. */
  readonly auditBacklog: () => number;
  readonly auditDropped: () => number;
  /** Refusals of unknown callers counted but not written (past the audit trail's per-second allowance). */
  readonly auditSuppressed: () => number;
  /** Grants with a live token (from the store; approximate). */
  readonly liveGrants: () => Promise<number>;
}

/**
 * The broker's Prometheus metrics (prom-client's registry). The series every proxied request
 * touches are tallies (`tally.ts`): a map lookup and an add per request, not a label check and hash.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new TallyCounter({
    name: "perishable_proxy_requests_total",
    help: "Proxied requests that reached an upstream, by upstream and status",
    labelNames: ["upstream", "status"],
    registry: this.registry,
  });
  readonly denials = new TallyCounter({
    name: "perishable_denials_total",
    help: "Requests refused by the broker, by error code",
    labelNames: ["code"],
    registry: this.registry,
  });
  readonly tokens = new Counter({
    name: "perishable_tokens_total",
    help: "Tokens handed out, by kind: issued (root grant), delegated (child grant), refreshed",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly revocations = new Counter({
    name: "perishable_revocations_total",
    help: "Grants (or tokens) revoked, by kind: grant, token, bulk, self",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly credentialAge = new TallyHistogram({
    name: "perishable_credential_age_seconds",
    help: "Age of the token at the moment it was used",
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14_400, 86_400],
    registry: this.registry,
  });
  readonly overhead = new TallyHistogram({
    name: "perishable_broker_overhead_seconds",
    help: "Time a proxied request spent in the broker: total minus upstream",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registry: this.registry,
  });
  readonly upstreamLatency = new TallyHistogram({
    name: "perishable_upstream_latency_seconds",
    help: "Time from dispatch to the end of the upstream's response",
    labelNames: ["upstream"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registry: this.registry,
  });
  readonly spendUsd = new TallyCounter({
    name: "perishable_spend_usd_total",
    help: "US dollars charged for proxied requests, by upstream and price entry (the model glob that priced them)",
    labelNames: ["upstream", "price"],
    registry: this.registry,
  });
  readonly spendTokens = new TallyCounter({
    name: "perishable_spend_tokens_total",
    help: "Tokens charged for proxied requests, by upstream and price entry",
    labelNames: ["upstream", "price"],
    registry: this.registry,
  });
  readonly toolCalls = new Counter({
    name: "perishable_mcp_tool_calls_total",
    help: "MCP tools/call messages forwarded, by upstream and the scope glob that allowed the tool (any: no tool list)",
    labelNames: ["upstream", "tool"] as const,
    registers: [this.registry],
  });
  readonly keyRotations = new Counter({
    name: "perishable_upstream_key_rotations_total",
    help: "Upstream keys read again from their files: rotated, or refused (empty or unreadable: the old key kept)",
    labelNames: ["upstream", "result"] as const,
    registers: [this.registry],
  });
  readonly connectionsCut = new Counter({
    name: "perishable_connections_cut_total",
    help: "Live connections (answers in flight, streams, WebSockets) the broker cut, by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  /** This node's live connections, read at scrape time (set by the server). */
  liveConnections: () => readonly { readonly upstream: string; readonly kind: string }[] = () => [];

  constructor(sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: "perishable_" });
    new Gauge({
      name: "perishable_audit_backlog",
      help: "Audit events waiting to be written",
      registers: [this.registry],
      collect() {
        this.set(sources.auditBacklog());
      },
    });
    new Gauge({
      name: "perishable_audit_dropped",
      help: "Audit events dropped because the buffer was full (store down too long)",
      registers: [this.registry],
      collect() {
        this.set(sources.auditDropped());
      },
    });
    new Gauge({
      name: "perishable_audit_suppressed",
      help: "Refusals of callers without a known credential that were counted here instead of written to the audit trail",
      registers: [this.registry],
      collect() {
        this.set(sources.auditSuppressed());
      },
    });
    const metrics = this;
    new Gauge({
      name: "perishable_live_connections",
      help: "Connections open through this node (answers in flight, streams, WebSockets), by upstream and kind",
      labelNames: ["upstream", "kind"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { upstream, kind } of metrics.liveConnections()) this.labels(upstream, kind).inc();
      },
    });
    new Gauge({
      name: "perishable_live_grants",
      help: "Grants holding a live token",
      registers: [this.registry],
      async collect() {
        try {
          this.set(await sources.liveGrants());
        } catch {
          // store unavailable: keep the last value rather than fail the scrape
        }
      },
    });
  }

  connectionCut(reason: string): void {
    this.connectionsCut.labels(reason).inc();
  }

  /** A tool call, labelled by the glob that allowed it: the label set is bounded by the config. */
  toolCall(upstream: string, glob: string): void {
    this.toolCalls.labels(upstream, glob).inc();
  }

  /** A charge, labelled by the price entry (bounded by the config), never by the model the body named. */
  spend(upstream: string, price: string, usd: number, tokens: number): void {
    if (usd > 0) this.spendUsd.labels(upstream, price).inc(usd);
    if (tokens > 0) this.spendTokens.labels(upstream, price).inc(tokens);
  }

  request(upstream: string, status: number): void {
    this.requests.labels(upstream, String(status)).inc();
  }

  denial(code: string): void {
    this.denials.labels(code).inc();
  }

  upstream(upstream: string, seconds: number): void {
    this.upstreamLatency.labels(upstream).observe(seconds);
  }
}
