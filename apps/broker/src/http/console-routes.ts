import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { BrokerError } from "../errors.js";

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  /** Vite names assets by content hash: they never change under the same name. */
  readonly immutable: boolean;
}

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/**
 * Everything the console loads comes from this broker: no inline script, no other origin, no
 * framing, no referrer. The admin key travels only in fetch() Authorization headers it sets.
 */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/** The built console: next to the bundle (dist/console) or, running from sources, in dist/console. */
const consoleDir = (): string | undefined =>
  ["./console/", "../../dist/console/"]
    .map((path) => fileURLToPath(new URL(path, import.meta.url)))
    .find((dir) => existsSync(join(dir, "index.html")));

const loadAssets = (dir: string): Map<string, Asset> => {
  const assets = new Map<string, Asset>();
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const full = join(at, name);
      if (statSync(full).isDirectory()) walk(full);
      else {
        const path = relative(dir, full).split("\\").join("/");
        const ext = name.slice(name.lastIndexOf("."));
        assets.set(path, {
          body: readFileSync(full),
          type: TYPES[ext] ?? "application/octet-stream",
          immutable: path.startsWith("assets/"),
        });
      }
    }
  };
  walk(dir);
  return assets;
};

/** `/console`: the operator console, served from memory (a handful of files read at start). */
export const registerConsoleRoutes = (app: FastifyInstance): void => {
  const dir = consoleDir();
  const assets = dir ? loadAssets(dir) : new Map<string, Asset>();
  app.get("/console", async (_request, reply) => reply.redirect("/console/", 302));
  app.get("/console/*", async (request, reply) => {
    if (!dir) throw new BrokerError("not_found", "the console is not built (run pnpm build)");
    const path = (request.params as { "*": string })["*"] || "index.html";
    const asset = assets.get(path);
    if (!asset) throw new BrokerError("not_found", "no such console file");
    reply.headers(SECURITY_HEADERS);
    reply.header("content-type", asset.type);
    reply.header("cache-control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache");
    return reply.send(asset.body);
  });
};
