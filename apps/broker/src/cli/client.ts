import { type AdminClient, adminClient, readError, type Schema } from "@perishable/protocol";

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The broker refused (its code is printed) or the command failed. */
  failed: 1,
  /** Bad flags, a missing key in the environment, an invalid config. */
  usage: 2,
  /** The broker could not be reached. */
  unreachable: 3,
  /** The grant or token does not exist. */
  notFound: 4,
} as const;

/** A CLI failure with the exit code it maps to. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Every answer is parsed with its schema from @perishable/protocol, never cast. */
export interface ApiClient {
  get<T>(path: string, schema: Schema<T>): Promise<T>;
  send<T>(method: "POST" | "DELETE", path: string, schema: Schema<T>, body?: unknown): Promise<T>;
}

/** Reads a key from the environment (never from a flag: flags end up in shell history and `ps`). */
export const keyFromEnv = (env: NodeJS.ProcessEnv, name: string): string => {
  const value = env[name]?.trim();
  if (!value) throw new CliError(`set ${name} in the environment`, EXIT.usage);
  return value;
};

/** One request to the broker with one credential → the answer's JSON; every failure a CliError. */
const transport =
  (baseUrl: string, credential: string, timeoutMs: number) =>
  async ({ method, path, body }: { method: string; path: string; body?: unknown }): Promise<unknown> => {
    let response: Response;
    try {
      response = await fetch(new URL(path, baseUrl), {
        method,
        headers: {
          authorization: `Bearer ${credential}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new CliError(
        `cannot reach the broker at ${baseUrl} (${(error as Error).message})`,
        EXIT.unreachable,
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CliError(`the broker answered ${response.status} with a body that is not JSON`, EXIT.failed);
    }
    if (!response.ok) {
      const refusal = readError(json);
      if (!refusal) throw new CliError(`the broker answered ${response.status}`, EXIT.failed);
      const { code, message } = refusal;
      throw new CliError(`${code}: ${message}`, code === "not_found" ? EXIT.notFound : EXIT.failed);
    }
    return json;
  };

const badAnswer = ({ method, path }: { method: string; path: string }) =>
  new CliError(`unexpected answer from the broker to ${method} ${path}`, EXIT.failed);

/** The token API with an issuer key; every error becomes a CliError with its exit code. */
export const apiClient = (baseUrl: string, credential: string, timeoutMs = 15_000): ApiClient => {
  const send = transport(baseUrl, credential, timeoutMs);
  const call = async <T>(method: string, path: string, schema: Schema<T>, body?: unknown): Promise<T> => {
    const parsed = schema.safeParse(await send({ method, path, body }));
    if (!parsed.success) throw badAnswer({ method, path: path.split("?", 1)[0]! });
    return parsed.data;
  };
  return {
    get: (path, schema) => call("GET", path, schema),
    send: (method, path, schema, body) => call(method, path, schema, body),
  };
};

/** The admin API (`ADMIN_ROUTES`) with an admin key: every answer parsed with its route's schema. */
export const adminApi = (baseUrl: string, adminKey: string, timeoutMs = 15_000): AdminClient =>
  adminClient(transport(baseUrl, adminKey, timeoutMs), badAnswer);
