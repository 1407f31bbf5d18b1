export {
  AdminGrantView,
  AdminTokenView,
  AuditPage,
  GRANT_STATUSES,
  GrantDetail,
  GrantList,
  RevocationResult,
  RevocationSelector,
} from "./admin.js";
export {
  ADMIN_ROUTES,
  type AdminAnswer,
  type AdminClient,
  type AdminInput,
  type AdminRouteName,
  AuditQuery,
  adminClient,
  adminRequest,
  GrantsQuery,
  RevocationQuery,
} from "./admin-api.js";
export {
  AUDIT_EVENT_TYPES,
  type AuditDetails,
  AuditEvent,
  type AuditEventOf,
  type AuditEventType,
  eventsOf,
  USED_FAILURES,
} from "./audit.js";
export {
  ERROR_CATALOG,
  ERROR_CODES,
  type ErrorCode,
  type ErrorEnvelope,
  type ErrorSpec,
  errorEnvelope,
  isErrorCode,
} from "./errors.js";
export { CREDENTIAL_HEADERS, REQUEST_ID_HEADER } from "./headers.js";
export {
  GRANT_ID_PREFIX,
  GRANT_ID_RE,
  grantTree,
  ID_ALPHABET,
  ID_BODY_LENGTH,
  looksLikeToken,
  TOKEN_ID_PREFIX,
  TOKEN_ID_RE,
  TOKEN_PREFIX,
  TOKEN_RE,
  TOKEN_SECRET_LENGTH,
  TREE_LENGTH,
  tokenIdTree,
  tokenTree,
} from "./ids.js";
export { redact } from "./redact.js";
export {
  AGENT_NAME_RE,
  AgentName,
  ErrorEnvelopeSchema,
  GrantId,
  GrantView,
  IssueTokenRequest,
  MAX_METADATA_ENTRIES,
  RefreshTokenRequest,
  RevokeResponse,
  readError,
  SCOPE_NAME_RE,
  type Schema,
  ScopeName,
  SelfResponse,
  Token,
  TokenId,
  TokenResponse,
} from "./schemas.js";
export { callerText, isPrintable, neutralize, neutralizeDeep, terminalJson } from "./text.js";
