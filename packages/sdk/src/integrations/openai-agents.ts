import type { ClientOptions } from "./clients.js";

/**
 * The parts of `@openai/agents` this touches, passed in by the caller: the SDK does not depend on
 * the Agents SDK, and uses the caller's own copy of it (and of `openai`).
 */
export interface OpenAIAgentsModule {
  setDefaultOpenAIClient(client: never): void;
  setTraceProcessors(processors: never[]): void;
  setOpenAIAPI(api: "chat_completions" | "responses"): void;
}

/** What `useOpenAIAgents` needs of a session. */
export interface AgentsSession {
  openai(options?: { upstream?: string }): ClientOptions;
}

/**
 * Runs the OpenAI Agents SDK through the broker: its models get an OpenAI client built on the
 * session (the current token on every call, refreshed under it), and its default trace exporter
 * is removed. That exporter sends the configured OpenAI key to OpenAI's tracing endpoint: with a
 * `prs_` token configured, it would hand the token to a third party. Pass your own
 * `traceProcessors` to route traces somewhere of your choosing; nothing else is exported.
 */
export const useOpenAIAgents = (
  session: AgentsSession,
  agents: OpenAIAgentsModule,
  OpenAI: new (options: ClientOptions) => object,
  options: {
    readonly upstream?: string;
    readonly api?: "chat_completions" | "responses";
    readonly traceProcessors?: readonly unknown[];
  } = {},
): void => {
  agents.setTraceProcessors([...(options.traceProcessors ?? [])] as never[]);
  agents.setDefaultOpenAIClient(
    new OpenAI(session.openai(options.upstream ? { upstream: options.upstream } : {})) as never,
  );
  if (options.api) agents.setOpenAIAPI(options.api);
};
