/** Header names that are part of the contract. */
export const REQUEST_ID_HEADER = "x-perishable-request-id";

/** Headers a client may carry its token in; all are stripped before a request is forwarded. */
export const CREDENTIAL_HEADERS = ["authorization", "x-api-key", "api-key"] as const;
