export { redact } from "@perishable/protocol";
export { type DpopKey, type DpopKeyPair, dpopKeyFrom, dpopProof, generateDpopKey } from "./dpop.js";
export { isPerishableError, PerishableError, type SdkErrorCode } from "./errors.js";
export type {
  BudgetEvent,
  BudgetLeft,
  ExpiredEvent,
  GrantInfo,
  RefreshedEvent,
  RevokedEvent,
  SessionErrorEvent,
  SessionEvents,
} from "./grant-info.js";
export type { AnthropicOptions, ClientOptions } from "./integrations/clients.js";
export { type OpenAIAgentsModule, useOpenAIAgents } from "./integrations/openai-agents.js";
export {
  type ConnectOptions,
  type Credential,
  DEFAULTS,
  type DelegateOptions,
  type SessionOptions,
} from "./options.js";
export type { KeeperState as SessionState } from "./refresh/keeper.js";
export { connect, fromToken, Session } from "./session.js";
