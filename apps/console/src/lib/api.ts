import {
  type AdminGrantView,
  AdminTokenView,
  AuditPage,
  GrantDetail,
  GrantList,
  neutralizeDeep,
  RevocationResult,
  type RevocationSelector,
  readError,
  type Schema,
} from "@perishable/protocol";

/** A failed admin call: the broker's code and message. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * The admin API with the operator's key: the same routes the CLI uses. The key travels only in the
 * Authorization header of same-origin requests; it is never put in a URL or a cookie.
 */
export const createApi = (adminKey: string) => {
  // Every answer is parsed with its schema from @perishable/protocol, never cast.
  const call = async <T>(schema: Schema<T>, method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${adminKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    const json: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const refusal = readError(json);
      throw new ApiError(
        refusal?.code ?? "error",
        refusal?.message ?? `HTTP ${response.status}`,
        response.status,
      );
    }
    // Agents and callers wrote much of what the API returns: no control or bidi character of it
    // reaches the page as such.
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new ApiError("bad_answer", `unexpected answer to ${method} ${path.split("?", 1)[0]}`, 0);
    return neutralizeDeep(parsed.data);
  };
  const query = (params: Record<string, string | undefined>) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    const text = q.toString();
    return text ? `?${text}` : "";
  };
  return {
    grants: (filter: { agent?: string; scope?: string; root?: string } = {}) =>
      call(GrantList, "GET", `/v1/grants${query({ ...filter, limit: "1000" })}`),
    grant: (id: string) => call(GrantDetail, "GET", `/v1/grants/${encodeURIComponent(id)}`),
    token: (id: string) => call(AdminTokenView, "GET", `/v1/tokens/${encodeURIComponent(id)}`),
    audit: (filter: {
      after?: string;
      grantId?: string;
      root?: string;
      agent?: string;
      type?: string;
      limit?: string;
    }) => call(AuditPage, "GET", `/v1/audit${query(filter)}`),
    revokeGrant: (id: string) => call(RevocationResult, "DELETE", `/v1/grants/${encodeURIComponent(id)}`),
    revokeToken: (id: string) => call(RevocationResult, "DELETE", `/v1/tokens/${encodeURIComponent(id)}`),
    preview: (selector: RevocationSelector) =>
      call(RevocationResult, "POST", "/v1/revocations?dryRun=true", selector),
    revoke: (selector: RevocationSelector) => call(RevocationResult, "POST", "/v1/revocations", selector),
    metrics: async () => (await fetch("/metrics", { credentials: "omit", cache: "no-store" })).text(),
  };
};

export type Api = ReturnType<typeof createApi>;
export type { AdminGrantView };
