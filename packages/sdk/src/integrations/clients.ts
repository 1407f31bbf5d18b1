/** The options every supported client constructor takes. */
export interface ClientOptions {
  readonly baseURL: string;
  /** The token at the time of the call; the session's fetch replaces it with the current one on every request. */
  readonly apiKey: string;
  readonly fetch: typeof fetch;
}

export interface AnthropicOptions {
  /** The broker's name for the upstream (default `anthropic`). */
  readonly upstream?: string;
  /**
   * `anthropic-sdk` (default): for `new Anthropic(...)` and LangChain, which add `/v1/…` themselves.
   * `ai-sdk`: for the Vercel AI SDK's `createAnthropic(...)`, whose baseURL ends in `/v1`.
   */
  readonly for?: "anthropic-sdk" | "ai-sdk";
}

const proxyBase = (broker: URL, upstream: string, suffix: string): string => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(upstream))
    throw new TypeError(`not an upstream name: ${upstream}`);
  return new URL(`proxy/${upstream}${suffix}`, broker).href;
};

/** OpenAI's SDK, the AI SDK's createOpenAI and LangChain's ChatOpenAI all want the `/v1` base. */
export const openaiOptions = (
  broker: URL,
  upstream: string,
  token: string,
  fetchImpl: typeof fetch,
): ClientOptions => ({
  baseURL: proxyBase(broker, upstream, "/v1"),
  apiKey: token,
  fetch: fetchImpl,
});

export const anthropicOptions = (
  broker: URL,
  options: AnthropicOptions,
  token: string,
  fetchImpl: typeof fetch,
): ClientOptions => ({
  baseURL: proxyBase(broker, options.upstream ?? "anthropic", options.for === "ai-sdk" ? "/v1" : ""),
  apiKey: token,
  fetch: fetchImpl,
});
