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
});
