export { redact } from "@perishable/protocol";
export { isPerishableError, PerishableError, type SdkErrorCode } from "./errors.js";
export type { AnthropicOptions, ClientOptions } from "./integrations/clients.js";
export {
  type ConnectOptions,
  type Credential,
  DEFAULTS,
  type DelegateOptions,
  type SessionOptions,
} from "./options.js";
export type { KeeperState as SessionState } from "./refresh/keeper.js";
export {
  connect,
  type ExpiredEvent,
  fromToken,
  type GrantInfo,
  type RefreshedEvent,
  type RevokedEvent,
  Session,
  type SessionErrorEvent,
  type SessionEvents,
} from "./session.js";
