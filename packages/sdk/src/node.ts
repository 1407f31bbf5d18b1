/**
 * `@perishable/sdk/node`: credential helpers for workloads that prove who they are with a
 * platform-issued identity token instead of a static key. Each returns a credential function for
 * `connect()`, which calls it on every use, so a token the platform rotates is always read fresh.
 */
import { readFile } from "node:fs/promises";
import { PerishableError } from "./errors.js";

/** A token file the platform keeps current (a Kubernetes projected service-account token, a SPIFFE JWT-SVID file). */
export const credentialFromFile = (path: string): (() => Promise<string>) => {
  if (typeof path !== "string" || path === "") throw new TypeError("credentialFromFile needs a path");
  return async () => {
    let text: string;
    try {
      text = (await readFile(path, "utf8")).trim();
    } catch (error) {
      throw new PerishableError(
        "unauthenticated",
        `cannot read the identity token file ${path} (${(error as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
    if (text === "") throw new PerishableError("unauthenticated", `the identity token file ${path} is empty`);
    return text;
  };
};

/** A Kubernetes projected service-account token (mount one with `audience: perishable`). */
export const kubernetesCredential = (path = "/var/run/secrets/tokens/perishable"): (() => Promise<string>) =>
  credentialFromFile(path);

export interface GithubActionsOptions {
  /** The audience the broker's OIDC issuer expects. */
  readonly audience: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

/**
 * A GitHub Actions OIDC token, requested fresh on each use. The job needs
 * `permissions: id-token: write`, which is what puts the request URL and token in its environment.
 */
export const githubActionsCredential = (options: GithubActionsOptions): (() => Promise<string>) => {
  const env = options.env ?? process.env;
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !requestToken) {
    throw new TypeError(
      "not in a GitHub Actions job with `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL is not set)",
    );
  }
  if (!options.audience) throw new TypeError("githubActionsCredential needs an audience");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  return async () => {
    const target = new URL(url);
    target.searchParams.set("audience", options.audience);
    let response: Response;
    try {
      response = await fetchImpl(target, {
        headers: { authorization: `bearer ${requestToken}`, accept: "application/json" },
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new PerishableError("broker_unreachable", "cannot reach GitHub's OIDC token endpoint", {
        cause: error,
      });
    }
    const body = (await response.json().catch(() => ({}))) as { value?: unknown };
    if (!response.ok || typeof body.value !== "string") {
      throw new PerishableError(
        "unauthenticated",
        `GitHub's OIDC token endpoint answered ${response.status} without a token`,
      );
    }
    return body.value;
  };
};
