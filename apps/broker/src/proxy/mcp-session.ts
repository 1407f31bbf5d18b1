import { timingSafeEqual } from "node:crypto";
import type { TokenHasher } from "../auth/secrets.js";

const MAC_LENGTH = 22; // 132 bits of HMAC-SHA256, base64url

/**
 * An MCP session belongs to the lineage that opened it. The broker hands the client the server's
 * `Mcp-Session-Id` sealed with a MAC over the lineage's root grant (`<server id>.<mac>`), and takes
 * the seal off again only for a token of that lineage: a session id copied out of one agent's
 * traffic is useless to any other lineage. Stateless, so every broker node can check it.
 */
export const sealSession = (hasher: TokenHasher, rootGrantId: string, serverId: string): string =>
  `${serverId}.${hasher.mac("mcp-session", rootGrantId, serverId).slice(0, MAC_LENGTH)}`;

/** The server's session id, when `presented` was sealed for this lineage; undefined otherwise. */
export const openSession = (
  hasher: TokenHasher,
  rootGrantId: string,
  presented: string,
): string | undefined => {
  const dot = presented.lastIndexOf(".");
  if (dot < 1 || presented.length - dot - 1 !== MAC_LENGTH) return undefined;
  const serverId = presented.slice(0, dot);
  const expected = Buffer.from(hasher.mac("mcp-session", rootGrantId, serverId).slice(0, MAC_LENGTH));
  const given = Buffer.from(presented.slice(dot + 1));
  return given.length === expected.length && timingSafeEqual(given, expected) ? serverId : undefined;
};

/** A flat header list with one header's value replaced (names compared case-insensitively). */
export const replaceHeader = (headers: string[], lower: string, map: (value: string) => string): string[] => {
  for (let i = 0; i < headers.length; i += 2)
    if (headers[i]!.toLowerCase() === lower) headers[i + 1] = map(headers[i + 1]!);
  return headers;
};
