import { REROUTING_HEADERS } from "../../policy/headers.js";
import type { Rereadable } from "../interpolate.js";
import type { Problems } from "../problems.js";
import type { ConfigFile } from "../schema.js";
import { Secret } from "../secret.js";
import type { UpstreamConfig } from "../types.js";

/** `upstreams:` → where each one is, its auth, headers, timeouts and pool size. */
export const resolveUpstreams = (
  file: ConfigFile["upstreams"],
  problems: Problems,
  /** Auth values that read a file, by upstream name: re-read when the file changes. */
  sources: ReadonlyMap<string, Rereadable> = new Map(),
): Map<string, UpstreamConfig> => {
  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, u] of Object.entries(file)) {
    const url = new URL(u.base_url);
    if (url.search || url.hash || url.username || url.password) {
      problems.add(`upstreams.${name}.base_url`, "must not carry a query, fragment or credentials");
    }
    u.forward_headers.forEach((header, i) => {
      if (!REROUTING_HEADERS.has(header)) {
        problems.add(
          `upstreams.${name}.forward_headers[${i}]`,
          `${header} is not a re-routing or account header the broker drops (it is forwarded or never is)`,
        );
      }
    });
    upstreams.set(
      name,
      Object.freeze({
        name,
        kind: u.kind,
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ""),
        auth: u.auth
          ? Object.freeze({
              header: u.auth.header,
              value: new Secret(u.auth.value),
              source: sources.get(name),
            })
          : undefined,
        headers: Object.freeze(Object.entries(u.headers).map(([k, v]) => Object.freeze([k, v] as const))),
        forwardHeaders: new Set(u.forward_headers),
        reservedHeaders: new Set([...Object.keys(u.headers), ...(u.auth ? [u.auth.header] : [])]),
        timeouts: Object.freeze({
          connectMs: u.timeout.connect * 1000,
          headersMs: u.timeout.headers * 1000,
          bodyMs: u.timeout.body * 1000,
        }),
        connections: u.connections,
      }),
    );
  }

  return upstreams;
};
