import {
  type IssueTokenRequest,
  RevokeResponse,
  readError,
  SelfResponse,
  TokenResponse,
} from "@perishable/protocol";
import ky, { type KyInstance } from "ky";
import type { z } from "zod";
import { PerishableError } from "../errors.js";

export interface BrokerClientOptions {
  readonly broker: URL;
  readonly fetch: typeof fetch;
  /** Per call, connection to last byte. */
  readonly timeoutMs: number;
}

/** A client with a session's options (its fetch signs calls when the session is DPoP-bound). */
export const clientFor = (o: { broker: URL; fetch: typeof fetch; timeoutMs: number }): BrokerClient =>
  new BrokerClient({ broker: o.broker, fetch: o.fetch, timeoutMs: o.timeoutMs });

/**
 * The broker's token API, and the only user of ky. Every call has a timeout, no call retries by
 * itself (the refresh loop decides), every answer is validated against the protocol's schemas,
 * and every failure is a PerishableError with a code.
 */
export class BrokerClient {
  readonly #ky: KyInstance;
  readonly broker: URL;

  constructor(options: BrokerClientOptions) {
    this.broker = options.broker;
    this.#ky = ky.create({
      prefixUrl: options.broker,
      timeout: options.timeoutMs,
      retry: 0,
      throwHttpErrors: false,
      fetch: options.fetch,
    });
  }

  issue(credential: string, body: IssueTokenRequest, signal?: AbortSignal): Promise<TokenResponse> {
    return this.#call("post", "v1/tokens", credential, TokenResponse, body, signal);
  }

  refresh(token: string, signal?: AbortSignal): Promise<TokenResponse> {
    return this.#call("post", "v1/tokens/refresh", token, TokenResponse, {}, signal);
  }

  self(token: string, signal?: AbortSignal): Promise<SelfResponse> {
    return this.#call("get", "v1/tokens/self", token, SelfResponse, undefined, signal);
  }

  revokeSelf(token: string, signal?: AbortSignal): Promise<RevokeResponse> {
    return this.#call("delete", "v1/tokens/self", token, RevokeResponse, undefined, signal);
  }

  async #call<T>(
    method: "get" | "post" | "delete",
    path: string,
    credential: string,
    schema: z.ZodType<T>,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    let response: Response;
    try {
      response = await this.#ky(path, {
        method,
        headers: { authorization: `Bearer ${credential}` },
        ...(body === undefined ? {} : { json: body }),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      const timedOut = (error as Error).name === "TimeoutError";
      throw new PerishableError(
        "broker_unreachable",
        timedOut
          ? `the broker did not answer ${method.toUpperCase()} /${path} in time`
          : `cannot reach the broker (${(error as Error).message})`,
        { cause: error },
      );
    }
    const text = await response.text();
    const json = parseJson(text);
    if (!response.ok) throw errorFrom(response, json);
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new PerishableError(
        "internal_error",
        `unexpected answer from the broker to ${method.toUpperCase()} /${path}`,
        {
          status: response.status,
        },
      );
    }
    return parsed.data;
  }
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** A broker error envelope as a PerishableError; anything else by its status. */
export const errorFrom = (response: Response, json: unknown): PerishableError => {
  const refusal = readError(json);
  if (refusal) {
    const { code, message, requestId } = refusal;
    return new PerishableError(code, message, { status: response.status, requestId });
  }
  // Not the broker's envelope: a proxy or load balancer in front of it.
  return response.status >= 500
    ? new PerishableError(
        "broker_unreachable",
        `the broker answered ${response.status} without an error body`,
        { status: response.status },
      )
    : new PerishableError("bad_request", `the broker answered ${response.status} without an error body`, {
        status: response.status,
      });
};
