/**
 * Headers that re-route a request (rewrite targets some servers and gateways honour), re-attribute
 * it (client-address headers that a CDN or an upstream's logs and rate limits trust), or choose
 * the account it is billed to (the real key may belong to several organisations and projects,
 * and the agent must not choose). Dropped unless the upstream's config lets one through by name
 * (`forward_headers`) or pins its value (`headers`).
 */
export const REROUTING_HEADERS: ReadonlySet<string> = new Set([
  "x-original-url",
  "x-rewrite-url",
  "x-original-uri",
  "x-forwarded-uri",
  "x-original-host",
  "x-host",
  "x-forwarded-server",
  "x-http-host-override",
  "x-envoy-original-path",
  "true-client-ip",
  "x-client-ip",
  "client-ip",
  "cf-connecting-ip",
  "x-cluster-client-ip",
  "fastly-client-ip",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
  "x-proxyuser-ip",
  "x-envoy-external-address",
  "openai-organization",
  "openai-project",
]);
