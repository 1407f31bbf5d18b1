import type { AdminGrantView } from "@perishable/protocol";
import type { GrantState } from "../store/types.js";
import { grantView } from "../tokens/self.js";
import { spendView } from "./spend.js";

const iso = (ms: number): string => new Date(ms).toISOString();

/** A stored grant as admins see it. */
export const adminGrantView = (state: GrantState, now: number): AdminGrantView => ({
  ...grantView(state.grant),
  status:
    state.revokedAt !== null
      ? "revoked"
      : state.grant.notAfter <= now || (state.latestExpiresAt ?? 0) <= now
        ? "expired"
        : "live",
  revokedAt: state.revokedAt === null ? null : iso(state.revokedAt),
  usesSpent: state.grant.maxUses === null ? null : state.used,
  tokenExpiresAt: state.latestExpiresAt === null ? null : iso(state.latestExpiresAt),
  spend: state.spend ? spendView(state.grant, state.spend) : null,
});
