import { errorEnvelope, REQUEST_ID_HEADER, readError } from "@perishable/protocol";
import { PerishableError } from "./errors.js";

/** What the broker says a budgeted lineage has left, on each proxied answer. */
export const BUDGET_LEFT_HEADER = "x-perishable-budget-left";

/** The request id of an answer the session gave itself, without asking the broker. */
const LOCAL_REQUEST_ID = "local";

/** The request with the current token in every credential header it uses (Authorization by default). */
export const withToken = (request: RequestInit, token: string): RequestInit => {
  const headers = new Headers(request.headers);
  let placed = false;
  for (const name of ["x-api-key", "api-key"]) {
    if (headers.has(name)) {
      headers.set(name, token);
      placed = true;
    }
  }
  if (headers.has("authorization") || !placed) headers.set("authorization", `Bearer ${token}`);
  return { ...request, headers };
};

export const replayable = (body: RequestInit["body"]): boolean =>
  body === undefined ||
  body === null ||
  typeof body === "string" ||
  body instanceof ArrayBuffer ||
  ArrayBuffer.isView(body) ||
  body instanceof URLSearchParams ||
  (typeof Blob !== "undefined" && body instanceof Blob) ||
  (typeof FormData !== "undefined" && body instanceof FormData);

/** The broker's code on a 401, read from a clone so the caller still gets the whole response. */
export const peekDenial = async (response: Response): Promise<PerishableError | undefined> => {
  try {
    const refusal = readError(await response.clone().json());
    if (refusal?.code === "token_revoked" || refusal?.code === "token_expired") {
      return new PerishableError(refusal.code, refusal.message, {
        status: 401,
        requestId: refusal.requestId,
      });
    }
  } catch {
    // Not JSON: not the broker's answer about the token.
  }
  return undefined;
};

/** The answer the broker would give, without asking it: the session knows its token is dead. */
export const localError = (error: PerishableError): Response =>
  new Response(
    JSON.stringify(errorEnvelope(error.code as "token_expired", error.message, LOCAL_REQUEST_ID)),
    {
      status: 401,
      headers: { "content-type": "application/json", [REQUEST_ID_HEADER]: LOCAL_REQUEST_ID },
    },
  );
