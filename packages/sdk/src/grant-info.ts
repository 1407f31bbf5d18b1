import type { SelfResponse, TokenResponse } from "@perishable/protocol";
import type { PerishableError } from "./errors.js";
import type { HeldToken } from "./refresh/keeper.js";

/** What a session knows about its grant. `expiresAt` is the current token's and changes on refresh. */
export interface GrantInfo {
  readonly grantId: string;
  readonly rootGrantId: string;
  readonly parentGrantId: string | null;
  readonly agent: string;
  readonly task: string | null;
  readonly scopes: readonly string[];
  readonly depth: number;
  readonly expiresAt: string;
  readonly notAfter: string;
  /** The grant's own budget (dollars, tokens), or null: it draws on its ancestors' if they have one. */
  readonly budget: { readonly usd?: number; readonly tokens?: number } | null;
  readonly maxConcurrent: number | null;
}

/** What a lineage has left, as the broker said with its last answer (the tightest level per unit). */
export interface BudgetLeft {
  readonly usd?: { readonly left: number; readonly limit: number };
  readonly tokens?: { readonly left: number; readonly limit: number };
}

/** Less than `warnBelow` of a budget is left (once per crossing, per unit). */
export interface BudgetEvent {
  readonly grant: GrantInfo;
  readonly unit: "usd" | "tokens";
  readonly left: number;
  readonly limit: number;
  /** left / limit. */
  readonly fraction: number;
}

export interface RefreshedEvent {
  readonly token: string;
  readonly tokenId: string;
  readonly expiresAt: string;
  readonly grant: GrantInfo;
  readonly previous: { readonly token: string; readonly tokenId: string; readonly expiresAt: string };
}
export interface ExpiredEvent {
  readonly tokenId: string;
  readonly grant: GrantInfo;
  /** `grant`: the grant reached its notAfter; `token`: the token could not be refreshed in time. */
  readonly reason: "token" | "grant";
}
export interface RevokedEvent {
  readonly tokenId: string;
  readonly grant: GrantInfo;
  /** `self`: this session (or an ancestor session in this process) revoked it; `broker`: the broker said so. */
  readonly by: "self" | "broker";
  readonly error: PerishableError | undefined;
}
export interface SessionErrorEvent {
  readonly error: Error;
  /** True when the refresh loop will try again while the current token is still valid. */
  readonly willRetry: boolean;
  readonly attempt: number;
}

export interface SessionEvents {
  refreshed: [RefreshedEvent];
  expired: [ExpiredEvent];
  revoked: [RevokedEvent];
  error: [SessionErrorEvent];
  budget: [BudgetEvent];
}

/**
 * Local times for a token: its lifetime is measured from when the request was sent, so the
 * local expiry is never later than the broker's, whatever the clocks say.
 */
export const heldFromResponse = (response: TokenResponse, sentAt: number): HeldToken => {
  const issued = Date.parse(response.issuedAt);
  return {
    token: response.token,
    tokenId: response.tokenId,
    issuedAt: sentAt,
    expiresAt: sentAt + (Date.parse(response.expiresAt) - issued),
    notAfter: sentAt + (Date.parse(response.notAfter) - issued),
    expiresAtIso: response.expiresAt,
  };
};

export const heldFromSelf = (token: string, self: SelfResponse, sentAt: number): HeldToken => {
  const expiresAt = sentAt + self.expiresIn * 1000;
  const lifetime = Date.parse(self.expiresAt) - Date.parse(self.issuedAt);
  return {
    token,
    tokenId: self.tokenId,
    issuedAt: expiresAt - lifetime,
    expiresAt,
    notAfter: expiresAt + (Date.parse(self.grant.notAfter) - Date.parse(self.expiresAt)),
    expiresAtIso: self.expiresAt,
  };
};

export const grantFromResponse = (r: TokenResponse): Omit<GrantInfo, "expiresAt"> => ({
  grantId: r.grantId,
  rootGrantId: r.rootGrantId,
  parentGrantId: r.parentGrantId,
  agent: r.agent,
  task: r.task,
  scopes: r.scopes,
  depth: r.depth,
  notAfter: r.notAfter,
  budget: r.budget ? { ...r.budget } : null,
  maxConcurrent: r.maxConcurrent ?? null,
});

export const grantFromSelf = ({ grant }: SelfResponse): Omit<GrantInfo, "expiresAt"> => ({
  grantId: grant.grantId,
  rootGrantId: grant.rootGrantId,
  parentGrantId: grant.parentGrantId,
  agent: grant.agent,
  task: grant.task,
  scopes: grant.scopes,
  depth: grant.depth,
  notAfter: grant.notAfter,
  budget: grant.budget ? { ...grant.budget } : null,
  maxConcurrent: grant.maxConcurrent,
});

/** `x-perishable-budget-left: usd=0.41, usd-limit=5, tokens=…, tokens-limit=…` → BudgetLeft. */
export const parseBudgetLeft = (header: string | null): BudgetLeft | undefined => {
  if (!header) return undefined;
  const values = new Map<string, number>();
  for (const part of header.split(",")) {
    const [name, value] = part.split("=").map((s) => s.trim());
    const n = Number(value);
    if (name && Number.isFinite(n) && n >= 0) values.set(name, n);
  }
  const unit = (name: "usd" | "tokens") => {
    const left = values.get(name);
    const limit = values.get(`${name}-limit`);
    return left === undefined || limit === undefined ? {} : { [name]: { left, limit } };
  };
  const parsed: BudgetLeft = { ...unit("usd"), ...unit("tokens") };
  return parsed.usd || parsed.tokens ? parsed : undefined;
};
