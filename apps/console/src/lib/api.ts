import {
  type AdminGrantView,
  type AdminInput,
  type AdminRouteName,
  adminClient,
  neutralizeDeep,
  type RevocationSelector,
  readError,
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
  const send = async ({ method, path, body }: { method: string; path: string; body: unknown }) => {
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
    return json;
  };
  // Every answer is parsed with its route's schema from @perishable/protocol, never cast.
  const admin = adminClient(
    send,
    ({ method, path }) => new ApiError("bad_answer", `unexpected answer to ${method} ${path}`, 0),
  );
  // Agents and callers wrote much of what the API returns: no control or bidi character of it
  // reaches the page as such.
  const call = async <N extends AdminRouteName>(name: N, input: AdminInput<N>) =>
    neutralizeDeep(await admin(name, input));
  return {
    grants: (filter: { agent?: string; scope?: string; root?: string } = {}) =>
      call("listGrants", { query: { ...filter, limit: 1000 } }),
    grant: (grantId: string) => call("grant", { params: { grantId } }),
    token: (tokenId: string) => call("token", { params: { tokenId } }),
    audit: (filter: {
      after?: string;
      grantId?: string;
      root?: string;
      agent?: string;
      type?: string;
      limit?: string;
    }) => call("audit", { query: filter }),
    revokeGrant: (grantId: string) => call("revokeGrant", { params: { grantId } }),
    revokeToken: (tokenId: string) => call("revokeToken", { params: { tokenId } }),
    preview: (selector: RevocationSelector) => call("revoke", { query: { dryRun: "true" }, body: selector }),
    revoke: (selector: RevocationSelector) => call("revoke", { body: selector }),
    metrics: async () => (await fetch("/metrics", { credentials: "omit", cache: "no-store" })).text(),
  };
};

export type Api = ReturnType<typeof createApi>;
export type { AdminGrantView };
