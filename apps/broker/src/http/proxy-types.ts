import type { Context } from "@opentelemetry/api";
import type { BrokerError } from "../errors.js";
import type { Plan, ProxyTarget } from "../proxy/plan.js";
import type { BudgetLeft, Flight, Subject } from "../store/types.js";

/** Why a proxied request is refused, and whose it was. */
export interface Refusal {
  readonly error: BrokerError;
  readonly subject: Subject | null;
  readonly rule: string | null;
}

/** A request the store allowed, on its way to the upstream. */
export interface Allowed {
  readonly requestId: string;
  readonly start: number;
  readonly target: ProxyTarget;
  readonly method: string;
  readonly plan: Plan;
  readonly subject: Subject;
  readonly scope: string;
  readonly flight: Flight | null;
  readonly left: BudgetLeft | undefined;
  /** The server's own MCP session id, unsealed. */
  readonly session: string | undefined;
  readonly notAfter: number;
  readonly trace: Context | undefined;
}
