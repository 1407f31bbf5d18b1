import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { SelfResponse, TokenResponse } from "@perishable/protocol";
import type { Command, Option } from "commander";
import { apiClient, CliError, EXIT, keyFromEnv } from "./client.js";

/**
 * `perishable token helper`: a fresh token on stdout and nothing else, for tools that run a
 * command to get their key — Claude Code's `apiKeyHelper`, which re-runs it periodically and
 * after a 401. The token is kept in a private file until half its lifetime, then refreshed
 * through the broker; each run checks it is still good (one `GET /v1/tokens/self`), so a revoked
 * grant is never handed out again: the helper fails, and keeps failing, until its file is removed
 * (a new grant is then a deliberate act). A grant that merely ended is replaced by a new one.
 */
interface Cached {
  readonly token: string;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly revoked?: true;
}

export interface HelperOptions {
  readonly scope: string[];
  readonly ttl?: number;
  readonly agent?: string;
  readonly url: string;
  readonly cache?: string;
}

const cachePath = (o: HelperOptions, env: NodeJS.ProcessEnv): string => {
  if (o.cache) return o.cache;
  if (env.PERISHABLE_HELPER_CACHE) return env.PERISHABLE_HELPER_CACHE;
  const what = createHash("sha256")
    .update(JSON.stringify([o.url, [...o.scope].sort(), o.agent ?? "", o.ttl ?? ""]))
    .digest("base64url")
    .slice(0, 16);
  const base = env.XDG_RUNTIME_DIR ?? join(env.HOME ?? tmpdir(), ".cache");
  return join(base, "perishable", `helper-${what}.json`);
};

const read = (file: string): Cached | undefined => {
  try {
    const value = JSON.parse(readFileSync(file, "utf8")) as Cached;
    return typeof value.token === "string" && typeof value.expiresAt === "number" ? value : undefined;
  } catch {
    return undefined;
  }
};

/** Written whole (a temporary file renamed over it), readable by its owner only. */
const write = (file: string, value: Cached): void => {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(value), { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, file);
};

const held = (answer: TokenResponse): Cached => ({
  token: answer.token,
  issuedAt: Date.parse(answer.issuedAt),
  expiresAt: Date.parse(answer.expiresAt),
});

const refusedWith = (error: unknown, code: string): boolean =>
  error instanceof CliError && error.message.startsWith(`${code}:`);

export const runHelper = async (o: HelperOptions, env: NodeJS.ProcessEnv): Promise<string> => {
  const file = cachePath(o, env);
  const cached = read(file);
  const revoked = () => {
    write(file, { ...(cached ?? { token: "", issuedAt: 0, expiresAt: 0 }), revoked: true });
    return new CliError(`the grant was revoked; remove ${file} to ask for a new one`, EXIT.failed);
  };
  if (cached?.revoked) throw revoked();
  const now = Date.now();
  if (cached && now < cached.expiresAt) {
    const half = cached.issuedAt + (cached.expiresAt - cached.issuedAt) / 2;
    const api = apiClient(o.url, cached.token);
    try {
      if (now < half) {
        await api.get("/v1/tokens/self", SelfResponse);
        return cached.token;
      }
      const fresh = held(await api.send("POST", "/v1/tokens/refresh", TokenResponse, {}));
      write(file, fresh);
      return fresh.token;
    } catch (error) {
      if (refusedWith(error, "token_revoked")) throw revoked();
      // The broker out of reach: the token is still within its life, and the broker checks it anyway.
      if (error instanceof CliError && error.exitCode === EXIT.unreachable) return cached.token;
      if (!refusedWith(error, "token_expired") && !refusedWith(error, "token_invalid")) throw error;
      // Ended (the grant's end, or the broker forgot it): a new grant below.
    }
  }
  const parent = env.PERISHABLE_TOKEN?.trim();
  const credential = parent || keyFromEnv(env, "PERISHABLE_ISSUER_KEY");
  const body = { scopes: o.scope, ...(o.ttl ? { ttl: o.ttl } : {}), ...(o.agent ? { agent: o.agent } : {}) };
  const issued = held(await apiClient(o.url, credential).send("POST", "/v1/tokens", TokenResponse, body));
  write(file, issued);
  return issued.token;
};

export const registerHelper = (
  token: Command,
  options: { env: NodeJS.ProcessEnv; out: (text: string) => void; url: Option },
): void => {
  token
    .command("helper")
    .description(
      "print a fresh token and nothing else (Claude Code's apiKeyHelper): issued with $PERISHABLE_ISSUER_KEY (or delegated from $PERISHABLE_TOKEN), kept until half its life, then refreshed; fails once the grant is revoked",
    )
    .requiredOption("-s, --scope <scope...>", "scopes to grant")
    .option("--ttl <seconds>", "token lifetime", (v) => Number.parseInt(v, 10))
    .option("--agent <name>", "agent name")
    .option(
      "--cache <file>",
      "where the token is kept (default: $PERISHABLE_HELPER_CACHE, else under $XDG_RUNTIME_DIR or ~/.cache)",
    )
    .addOption(options.url)
    .action(async (o: HelperOptions) => {
      options.out(await runHelper(o, options.env));
    });
};
