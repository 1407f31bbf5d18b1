import type { IncomingHttpHeaders } from "node:http";
import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { BrokerConfig, UpstreamConfig } from "../config/types.js";
import type { Subject } from "../store/types.js";

/**
 * OpenTelemetry spans for proxied requests (GenAI semantic conventions: operation, provider,
 * request and response model, token usage), for refusals, and for the token and revocation API —
 * with grant, agent and lineage as attributes and never a token or a key. Exported over OTLP/HTTP
 * to the configured collector; an incoming `traceparent` is continued. Off unless configured: the
 * proxy then holds `undefined` and pays one property check per request.
 */
export type TraceSettings = NonNullable<BrokerConfig["traces"]>;

/** What a finished proxied request tells the trace. */
export interface TracedRequest {
  readonly subject: Subject;
  readonly upstream: string;
  readonly method: string;
  readonly path: string;
  readonly scope: string;
  /** performance.now() when it arrived. */
  readonly start: number;
  readonly trace?: Context | undefined;
}

const getter = {
  keys: (carrier: IncomingHttpHeaders) => Object.keys(carrier),
  get: (carrier: IncomingHttpHeaders, key: string) => carrier[key],
};

/** The provider as GenAI conventions name it, from where the upstream is. */
const provider = (upstream: UpstreamConfig | undefined, name: string): string => {
  const host = upstream ? new URL(upstream.origin).hostname : "";
  if (host.endsWith("openai.com") || host.endsWith("openai.azure.com")) return "openai";
  if (host.endsWith("anthropic.com")) return "anthropic";
  if (host.endsWith("googleapis.com")) return "gcp.gemini";
  return name;
};

/** GenAI's operation name for a provider path. */
const operation = (path: string): string => {
  if (/\/(chat\/completions|messages|responses)(\/|$)/.test(path) && !path.includes("count_tokens"))
    return "chat";
  if (/\/embeddings(\/|$)/.test(path)) return "embeddings";
  if (/\/completions(\/|$)/.test(path)) return "text_completion";
  return "http";
};

const who = (subject: Subject | null): Attributes => ({
  ...(subject?.grantId ? { "perishable.grant_id": subject.grantId } : {}),
  ...(subject?.rootGrantId ? { "perishable.root_grant_id": subject.rootGrantId } : {}),
  ...(subject?.parentGrantId ? { "perishable.parent_grant_id": subject.parentGrantId } : {}),
  ...(subject?.agent ? { "perishable.agent": subject.agent } : {}),
  ...(subject?.onBehalfOf ? { "perishable.on_behalf_of": subject.onBehalfOf } : {}),
});

const epoch = (performanceMs: number): number => performance.timeOrigin + performanceMs;

export class Tracing {
  readonly #provider: TracerProvider;
  readonly #tracer;
  readonly #propagator = new W3CTraceContextPropagator();
  readonly #upstreams: ReadonlyMap<string, UpstreamConfig>;

  constructor(settings: TraceSettings, upstreams: ReadonlyMap<string, UpstreamConfig>) {
    this.#upstreams = upstreams;
    const exporter = new OTLPTraceExporter({
      url: settings.endpoint,
      headers: Object.fromEntries([...settings.headers].map(([k, v]) => [k, v.reveal()])),
    });
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({ "service.name": settings.serviceName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
      spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: 1_000 })],
    });
    this.#tracer = this.#provider.getTracer("perishable");
  }

  /** The caller's trace context (`traceparent`, `tracestate`), to continue. */
  context(headers: IncomingHttpHeaders): Context {
    return this.#propagator.extract(context.active(), headers, getter);
  }

  /** A proxied request that reached the upstream, once its answer is over. */
  proxied(
    r: TracedRequest,
    outcome: {
      status: number;
      error?: string | undefined;
      usage?: { model?: string; usage?: Record<string, number> } | undefined;
    },
  ): void {
    const op = operation(r.path);
    const model = outcome.usage?.model;
    const usage = outcome.usage?.usage ?? {};
    const input = usage.input_tokens ?? usage.prompt_tokens;
    const output = usage.output_tokens ?? usage.completion_tokens;
    const system = provider(this.#upstreams.get(r.upstream), r.upstream);
    const span = this.#start(
      model ? `${op} ${model}` : `${op} ${r.upstream}`,
      r.start,
      r.trace,
      SpanKind.CLIENT,
      {
        "gen_ai.operation.name": op,
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        ...(model ? { "gen_ai.request.model": model, "gen_ai.response.model": model } : {}),
        ...(input === undefined ? {} : { "gen_ai.usage.input_tokens": input }),
        ...(output === undefined ? {} : { "gen_ai.usage.output_tokens": output }),
        "http.request.method": r.method,
        "http.response.status_code": outcome.status,
        "url.path": r.path,
        "perishable.upstream": r.upstream,
        "perishable.scope": r.scope,
        ...who(r.subject),
      },
    );
    if (outcome.error || outcome.status >= 500)
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error ?? "" });
    span.end();
  }

  /** A proxied request the broker refused. */
  refused(
    r: { upstream: string; method: string; path: string; start?: number; trace?: Context | undefined },
    error: { code: string; status: number },
    subject: Subject | null,
  ): void {
    const span = this.#start(
      `refused ${r.upstream}`,
      r.start ?? performance.now(),
      r.trace,
      SpanKind.SERVER,
      {
        "http.request.method": r.method,
        "http.response.status_code": error.status,
        "url.path": r.path,
        "perishable.upstream": r.upstream,
        "perishable.denial": error.code,
        ...who(subject),
      },
    );
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.code });
    span.end();
  }

  /** An API call (issuance, exchange, refresh, revocation), when it is over. */
  api(route: string, method: string, status: number, elapsedMs: number, headers: IncomingHttpHeaders): void {
    const span = this.#start(
      `${method} ${route}`,
      performance.now() - elapsedMs,
      this.context(headers),
      SpanKind.SERVER,
      {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
      },
    );
    if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  #start(
    name: string,
    start: number,
    parent: Context | undefined,
    kind: SpanKind,
    attributes: Attributes,
  ): Span {
    return this.#tracer.startSpan(
      name,
      { kind, attributes, startTime: epoch(start) },
      parent ?? context.active(),
    );
  }

  /** Sends what is queued. */
  async close(): Promise<void> {
    await this.#provider.shutdown();
  }
}
